"""Energy per request and per token of a tiny GPT-2 server: batched generation, requests from
concurrent clients, one shared window per request.

The model is a 2-layer GPT-2 built from a config (random weights, nothing downloaded). Clients
send prompts from their own threads; the server thread batches what is waiting and generates.
Each request is a shared window from its arrival to its answer, so requests that overlap split
the energy of the time they overlap, and energy spent while none is open is the run's
`unattributed_energy` (see docs/energy-per-sample.md).

Run: `pip install '.[transformers]' && python examples/serve_tiny_gpt2.py`.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from carbonmeter import EmissionsTracker

PROMPT_TOKENS = 8
NEW_TOKENS = 16
MAX_BATCH = 4
CLIENTS = 4
REQUESTS_PER_CLIENT = 2


@dataclass
class Request:
    prompt: torch.Tensor
    done: threading.Event = field(default_factory=threading.Event)
    generated: int = 0


def serve(model: GPT2LMHeadModel, inbox: queue.Queue[Request | None]) -> None:
    """Takes what is waiting (up to MAX_BATCH requests) and generates for the batch at once."""
    while (first := inbox.get()) is not None:
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                waiting = inbox.get_nowait()
            except queue.Empty:
                break
            if waiting is None:
                inbox.put(None)  # keep the stop signal for the outer loop
                break
            batch.append(waiting)
        prompts = torch.stack([request.prompt for request in batch])
        with torch.no_grad():
            output = model.generate(
                prompts,
                attention_mask=torch.ones_like(prompts),
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=0,
            )
        for request, row in zip(batch, output, strict=True):
            request.generated = len(row) - PROMPT_TOKENS
            request.done.set()


def client(tracker: EmissionsTracker, inbox: queue.Queue[Request | None], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(REQUESTS_PER_CLIENT):
        prompt = torch.randint(1, 256, (PROMPT_TOKENS,), generator=generator)
        # One shared window per request: its prompt's tokens now, the generated ones at the end.
        with tracker.window("request", tokens=PROMPT_TOKENS, shared=True) as window:
            request = Request(prompt)
            inbox.put(request)
            request.done.wait(timeout=60)
            window.count(tokens=request.generated)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny model gains nothing from more, and a shared CI box loses
    config = GPT2Config(
        vocab_size=256,
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval()
    inbox: queue.Queue[Request | None] = queue.Queue()
    tracker = EmissionsTracker(project_name="tiny-gpt2-serving", country_iso_code="FRA")
    tracker.start()
    server = threading.Thread(target=serve, args=(model, inbox))
    server.start()
    clients = [threading.Thread(target=client, args=(tracker, inbox, i)) for i in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    inbox.put(None)
    server.join()
    tracker.stop()
    run = tracker.final_emissions_data
    assert run is not None
    print(
        f"{run.requests} requests, {run.tokens} tokens in {run.duration:.2f} s: "
        f"{run.joules_per_token:.4g} J/token, {run.joules_per_request:.4g} J/request, "
        f"{run.co2_g_per_1k_tokens:.3g} g CO2eq per 1k tokens (all the run's energy); "
        f"{(run.unattributed_energy or 0.0) * 3.6e6:.3g} J while no request was open"
    )


if __name__ == "__main__":
    main()
