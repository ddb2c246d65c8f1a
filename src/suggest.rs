//! "Did you mean": the names nearest a misspelt one, for every lookup that names what it knows
//! (countries, regions, cloud regions, hardware), so they all suggest alike.

/// Lower case with Latin accents removed, so `Québec`, `QUEBEC` and `quebec` compare equal.
pub fn fold(text: &str) -> String {
    text.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
            'ğ' => 'g',
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => 'i',
            'ł' | 'ľ' => 'l',
            'ñ' | 'ń' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
            'ř' => 'r',
            'ś' | 'š' | 'ş' | 'ș' => 's',
            'ť' | 'ţ' | 'ț' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            other => other,
        })
        .collect()
}

/// Longest part of a query compared, in characters: longer than any name we know, and it keeps
/// a 100,000-character name from costing seconds (the distance is quadratic).
const MAX_COMPARED_CHARS: usize = 64;

/// The `count` names nearest to `query` by edit distance, quoted.
pub fn closest<'a>(query: &str, names: impl Iterator<Item = &'a str>, count: usize) -> Vec<String> {
    let query: String = fold(query).chars().take(MAX_COMPARED_CHARS).collect();
    let mut scored: Vec<(usize, &str)> = names
        .filter(|name| !name.is_empty())
        .map(|name| (edit_distance(&query, &fold(name)), name))
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(count)
        .map(|(_, name)| format!("{name:?}"))
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names_come_first_quoted_and_once() {
        let names = ["France", "Finland", "Germany", "France"];
        assert_eq!(
            closest("Frnace", names.into_iter(), 2),
            vec!["\"France\"", "\"Finland\""]
        );
    }

    #[test]
    fn accents_and_case_do_not_count() {
        assert_eq!(fold("  Québec "), "quebec");
        assert_eq!(
            closest("QUEBEC", ["Québec", "Quebes"].into_iter(), 1),
            vec!["\"Québec\""]
        );
    }
}
