//! The memory settings an instance gets from its flavor's RAM, at create and on a flavor
//! resize. The guest writes them; the API shows them in an instance's effective configuration.
//! A configuration group that sets one of these parameters wins (its file is read later).

use std::collections::BTreeMap;

use super::Checked;

/// RAM assumed when a flavor reports none (or nonsense): the smallest flavor we would sell.
const FALLBACK_RAM_MB: i64 = 256;

/// The settings for `ram_mb` of memory (see docs/configuration-groups.md for the reasoning):
/// - `shared_buffers` = RAM / 4 (PostgreSQL's own guidance for a dedicated server),
///   at least 16 MB;
/// - `effective_cache_size` = RAM × 3 / 4 (what the OS cache plus shared buffers can hold);
/// - `max_connections` = RAM / 16 MB, between 100 (PostgreSQL's default) and 500. Never below
///   the default: a backup taken on a server with more connections cannot be replayed by one
///   with fewer (hot standby refuses), so a small flavor keeps restoring what a default server
///   wrote;
/// - `work_mem` = RAM / 4 split over the connections, at least 1 MB (in kB);
/// - `maintenance_work_mem` = RAM / 16, between 16 MB and 2 GB.
pub fn settings(ram_mb: i64) -> BTreeMap<String, Checked> {
    let ram = if ram_mb > 0 { ram_mb } else { FALLBACK_RAM_MB };
    let shared_buffers = (ram / 4).max(16);
    let effective_cache_size = (ram * 3 / 4).max(shared_buffers);
    let max_connections = (ram / 16).clamp(100, 500);
    let work_mem_kb = (ram * 1024 / 4 / max_connections).max(1024);
    let maintenance = (ram / 16).clamp(16, 2048);
    BTreeMap::from([
        (
            "shared_buffers".to_owned(),
            Checked::Text(format!("{shared_buffers}MB")),
        ),
        (
            "effective_cache_size".to_owned(),
            Checked::Text(format!("{effective_cache_size}MB")),
        ),
        ("max_connections".to_owned(), Checked::Int(max_connections)),
        (
            "work_mem".to_owned(),
            Checked::Text(format!("{work_mem_kb}kB")),
        ),
        (
            "maintenance_work_mem".to_owned(),
            Checked::Text(format!("{maintenance}MB")),
        ),
    ])
}

/// The memory file the guest writes beside the data directory.
pub fn render(ram_mb: i64) -> String {
    let mut out = format!(
        "# Managed by the Trove guest agent: memory settings for a flavor with {ram_mb} MB of RAM.\n\
         # Rewritten on a flavor resize; a configuration group's value for the same parameter wins.\n"
    );
    for (name, value) in settings(ram_mb) {
        out.push_str(&format!("{name} = {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_gigabyte_flavor_gets_a_quarter_for_shared_buffers() {
        let s = settings(2048);
        assert_eq!(s["shared_buffers"], Checked::Text("512MB".into()));
        assert_eq!(s["effective_cache_size"], Checked::Text("1536MB".into()));
        assert_eq!(s["max_connections"], Checked::Int(128));
        assert_eq!(s["work_mem"], Checked::Text("4096kB".into()));
    }

    #[test]
    fn tiny_or_missing_ram_still_starts_a_server() {
        let s = settings(0);
        assert_eq!(s["max_connections"], Checked::Int(100));
        assert_eq!(s["shared_buffers"], Checked::Text("64MB".into()));
        assert_eq!(settings(32)["shared_buffers"], Checked::Text("16MB".into()));
    }

    #[test]
    fn every_memory_setting_passes_the_tenant_rules() {
        let rules = super::super::postgresql();
        for ram in [0, 512, 2048, 65536] {
            for (name, value) in settings(ram) {
                let sent = match &value {
                    Checked::Text(t) => serde_json::json!(t),
                    Checked::Int(i) => serde_json::json!(i),
                    other => panic!("{name}: {other:?}"),
                };
                assert_eq!(rules.check(&name, &sent), Ok(value), "{name} for {ram} MB");
            }
        }
    }
}
