//! The `restore_command` a point-in-time recovery uses: a small shell script that serves WAL files
//! from the instance's WAL store and tells "absent" apart from "broken" (docs/postgres-recovery.md P7).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::os_user::{remove_file_if_exists, write_owned};
use super::runner::Runner;
use super::sibling;

/// Where the script for a recovery into `data_dir` lives: beside it, not inside, so that it never
/// ends up in a backup of the recovered instance.
pub(crate) fn script_path(data_dir: &Path) -> PathBuf {
    sibling(data_dir, "restore.sh")
}

/// Segments already checked against their sidecar during this recovery, one path per line,
/// exactly as the script names them (`<root>/tl<N>/<segment>`).
pub(crate) fn verified_path(data_dir: &Path) -> PathBuf {
    sibling(data_dir, "verified")
}

/// What the script prints (to the server log) when it refuses a damaged segment.
pub(crate) const RESTORE_CHECKSUM_MISMATCH: &str = "trove restore_command: checksum mismatch";

/// `value` as one single-quoted `/bin/sh` word.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The script body. Exit codes carry the meaning PostgreSQL gives them:
/// - 0: the file was copied to `%p`;
/// - 1: no such file. PostgreSQL asks for files past the end of WAL and for history files of
///   timelines that do not exist all the time, and takes this as "end of archive";
/// - 126: the file exists but cannot be served (checksum mismatch, copy failed). Exit codes above
///   125 make the startup process FATAL, so recovery aborts instead of ending early at a damaged
///   segment and promoting a truncated history.
///
/// A segment is served from `<name>` in any `tl*/` directory, else from `<name>.partial` (the
/// receiver's segment in progress). The lookup runs twice because the receiver renames the
/// `.partial` when the segment completes, which could fall between our two checks.
fn render(wal_root: &Path, verified: &Path) -> String {
    let root = shell_quote(&wal_root.to_string_lossy());
    let verified = shell_quote(&verified.to_string_lossy());
    format!(
        r#"#!/bin/sh
# Written by the Trove guest agent for one recovery; removed when the recovery ends.
root={root}
verified={verified}
f="$1"
p="$2"
find_file() {{
  for d in "$root"/tl*/; do
    if [ -f "$d$f" ]; then src="$d$f"; sidecar="$d$f.sha256"; return 0; fi
  done
  case "$f" in
    ????????????????????????)
      for d in "$root"/tl*/; do
        if [ -f "$d$f.partial" ]; then src="$d$f.partial"; sidecar=; return 0; fi
      done ;;
  esac
  return 1
}}
find_file || find_file || exit 1
# Segments the agent already checked (in parallel with replay) are not hashed again here.
if [ -n "$sidecar" ] && [ -f "$sidecar" ] && ! grep -qxF -- "$src" "$verified" 2>/dev/null; then
  want=$(cut -d ' ' -f 1 "$sidecar") || exit 126
  have=$(sha256sum "$src" | cut -d ' ' -f 1) || exit 126
  if [ "$want" != "$have" ]; then
    echo "{RESTORE_CHECKSUM_MISMATCH} for $src" >&2
    exit 126
  fi
fi
cp "$src" "$p" || exit 126
exit 0
"#
    )
}

/// Writes the script for a recovery into `data_dir`, owned by the cluster's OS user (it runs as
/// the server), mode 0700, and returns its path.
pub(crate) async fn write_script(
    runner: &Runner,
    data_dir: &Path,
    wal_root: &Path,
) -> Result<PathBuf> {
    let path = script_path(data_dir);
    let verified = verified_path(data_dir);
    write_owned(&verified, b"", 0o600, runner.owner()).await?;
    write_owned(
        &path,
        render(wal_root, &verified).as_bytes(),
        0o700,
        runner.owner(),
    )
    .await?;
    Ok(path)
}

pub(crate) async fn remove_script(data_dir: &Path) -> Result<()> {
    remove_file_if_exists(&verified_path(data_dir)).await?;
    remove_file_if_exists(&script_path(data_dir)).await
}

/// Checks completed segments from `from_segno` on against their sidecars, oldest first (the
/// order replay asks for them), and appends each good one to the verified list, so the restore
/// command copies it without hashing it on replay's critical path. A segment that does not match
/// is left off the list: the restore command then hashes it itself and aborts the recovery.
/// Meant to run beside unpacking and replay; it stops when its task is aborted.
pub(crate) async fn preverify_segments(wal_root: PathBuf, data_dir: PathBuf, from_segno: u64) {
    use tokio::io::AsyncWriteExt as _;
    let store = match super::wal_index::list_store(&wal_root).await {
        Ok(s) => s,
        Err(err) => {
            tracing::debug!(error = %format!("{err:#}"), "pre-verification skipped");
            return;
        }
    };
    let mut segments: Vec<(u64, u32, PathBuf)> = store
        .timelines
        .iter()
        .flat_map(|(tli, files)| {
            files
                .complete
                .iter()
                .filter(|(segno, _)| **segno >= from_segno)
                .map(|(segno, path)| (*segno, *tli, path.clone()))
        })
        .collect();
    segments.sort();
    let list = verified_path(&data_dir);
    for (_, tli, path) in segments {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let sidecar = path.with_file_name(format!("{name}.sha256"));
        let Ok(want) = tokio::fs::read_to_string(&sidecar).await else {
            continue;
        };
        let want = want
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        match super::wal_index::sha256_file(&path).await {
            Ok(have) if have == want => {
                // The script builds `"$root"/tl<N>/` + name; match it byte for byte.
                let line = format!("{}/tl{tli}/{name}\n", wal_root.to_string_lossy());
                let appended = async {
                    let mut f = tokio::fs::OpenOptions::new()
                        .append(true)
                        .open(&list)
                        .await?;
                    f.write_all(line.as_bytes()).await
                }
                .await;
                if appended.is_err() {
                    return;
                }
            }
            Ok(_) => {
                tracing::warn!(segment = %path.display(), "WAL segment does not match its checksum")
            }
            Err(err) => {
                tracing::debug!(error = %format!("{err:#}"), "pre-verification of a segment failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_single_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn script_embeds_the_store_root_quoted() {
        let script = render(Path::new("/srv/wal root"), Path::new("/x/data.verified"));
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("root='/srv/wal root'\n"));
        assert!(script.contains("exit 126"));
    }
}
