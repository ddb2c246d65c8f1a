//! The country of the system time zone, for runs that name no location: no network, only the
//! IANA zone-to-country table (`data/timezone_countries.csv`, from the tz database's `zone.tab`).

use std::path::Path;

use super::tables;

/// Where the zone name was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemZone {
    /// IANA name (`Europe/Paris`), or the raw text when it is not a zone name.
    pub name: String,
    /// `TZ`, `/etc/localtime` or `/etc/timezone`.
    pub origin: &'static str,
}

/// The zone name in a `TZ` value, a `/etc/localtime` link target or `/etc/timezone` text:
/// drops a leading `:` and any path up to `zoneinfo/` (and its `posix/`/`right/` trees).
pub fn zone_name(text: &str) -> Option<String> {
    let text = text.trim().trim_start_matches(':');
    let name = match text.rfind("zoneinfo/") {
        Some(at) => &text[at + "zoneinfo/".len()..],
        None => text,
    };
    let name = name
        .strip_prefix("posix/")
        .or_else(|| name.strip_prefix("right/"))
        .unwrap_or(name);
    (!name.is_empty()).then(|| name.to_owned())
}

/// The system's zone: `TZ` when set (an empty `TZ` means UTC), else the target of the
/// `/etc/localtime` link, else `/etc/timezone`, all under `root` (`/` outside tests).
pub fn system_zone(tz_env: Option<&str>, root: &Path) -> Option<SystemZone> {
    if let Some(tz) = tz_env {
        return Some(SystemZone {
            name: zone_name(tz).unwrap_or_else(|| "UTC".to_owned()),
            origin: "TZ",
        });
    }
    if let Ok(target) = std::fs::read_link(root.join("etc/localtime"))
        && let Some(name) = zone_name(&target.to_string_lossy())
    {
        return Some(SystemZone {
            name,
            origin: "/etc/localtime",
        });
    }
    let text = std::fs::read_to_string(root.join("etc/timezone")).ok()?;
    zone_name(&text).map(|name| SystemZone {
        name,
        origin: "/etc/timezone",
    })
}

/// The one country of an IANA zone, when the table names one and the country table has a
/// figure for it. `UTC`, `Etc/*`, `CET` and unknown names give `None`.
pub fn country_of_zone(zone: &str) -> Option<&'static tables::CountryRow> {
    let row = tables::timezones().iter().find(|row| row.zone == zone)?;
    tables::countries().iter().find(|c| c.iso2 == row.iso2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_from_every_spelling() {
        assert_eq!(zone_name(":Europe/Paris").as_deref(), Some("Europe/Paris"));
        assert_eq!(
            zone_name("/usr/share/zoneinfo/America/New_York").as_deref(),
            Some("America/New_York")
        );
        assert_eq!(
            zone_name("../usr/share/zoneinfo/posix/Asia/Tokyo").as_deref(),
            Some("Asia/Tokyo")
        );
        assert_eq!(zone_name("Etc/UTC\n").as_deref(), Some("Etc/UTC"));
        assert_eq!(zone_name("  "), None);
    }

    #[test]
    fn one_country_zones_name_their_country() {
        for (zone, iso3) in [
            ("Europe/Paris", "FRA"),
            ("Europe/Oslo", "NOR"),
            ("America/Toronto", "CAN"),
            ("US/Pacific", "USA"),
            ("Asia/Calcutta", "IND"),
        ] {
            assert_eq!(
                country_of_zone(zone).map(|c| c.iso3.as_str()),
                Some(iso3),
                "{zone}"
            );
        }
    }

    #[test]
    fn utc_and_multi_country_names_give_none() {
        for zone in [
            "UTC",
            "Etc/UTC",
            "Etc/GMT-1",
            "CET",
            "EST5EDT",
            "Nowhere/Atlantis",
        ] {
            assert!(country_of_zone(zone).is_none(), "{zone}");
        }
    }

    #[test]
    fn tz_wins_then_localtime_then_etc_timezone() {
        let root = tempfile::tempdir().expect("tempdir");
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).expect("etc");
        assert_eq!(system_zone(None, root.path()), None);
        std::fs::write(etc.join("timezone"), "Europe/Oslo\n").expect("timezone");
        assert_eq!(
            system_zone(None, root.path()).map(|z| (z.name, z.origin)),
            Some(("Europe/Oslo".to_owned(), "/etc/timezone"))
        );
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Asia/Tokyo", etc.join("localtime"))
            .expect("symlink");
        assert_eq!(
            system_zone(None, root.path()).map(|z| z.name),
            Some("Asia/Tokyo".to_owned())
        );
        assert_eq!(
            system_zone(Some("Europe/Paris"), root.path()).map(|z| (z.name, z.origin)),
            Some(("Europe/Paris".to_owned(), "TZ"))
        );
        assert_eq!(
            system_zone(Some(""), root.path()).map(|z| z.name),
            Some("UTC".to_owned())
        );
    }
}
