//! The `restore_command` a point-in-time recovery uses: a small shell script that serves WAL files
//! from the replay's fetch directory, waits for a segment still on its way from the object store,
//! and tells "absent" apart from "broken" (docs/postgres-recovery.md P7, docs/object-store.md).

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

/// What the script prints (to the server log) when it refuses a damaged segment.
pub(crate) const RESTORE_CHECKSUM_MISMATCH: &str = "trove restore_command: checksum mismatch";
/// What the script prints when a segment could not be fetched from the store.
pub(crate) const RESTORE_FETCH_FAILED: &str = "trove restore_command: could not fetch";
/// How long the script waits for a segment on its way (in polls of 20 ms): ten minutes.
const WAIT_POLLS: u32 = 30_000;

/// `value` as one single-quoted `/bin/sh` word.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The script body. Exit codes carry the meaning PostgreSQL gives them:
/// - 0: the file was copied to `%p`;
/// - 1: no such file. PostgreSQL asks for files past the end of WAL and for history files of
///   timelines that do not exist all the time, and takes this as "end of archive";
/// - 126: the file exists but cannot be served (checksum mismatch, copy failed, the fetch from
///   the store failed or took too long). Exit codes above 125 make the startup process FATAL, so
///   recovery aborts instead of ending early at a damaged segment and promoting a truncated
///   history.
///
/// A segment is served from `<name>` in any `tl*/` directory, else from `<name>.partial` (the
/// store's segment in progress). A name on the expected list that is not there yet is waited
/// for: the fetcher is bringing it.
fn render(root: &Path, verified: &Path, expected: &Path) -> String {
    let root = shell_quote(&root.to_string_lossy());
    let verified = shell_quote(&verified.to_string_lossy());
    let expected = shell_quote(&expected.to_string_lossy());
    format!(
        r#"#!/bin/sh
# Written by the Trove guest agent for one recovery; removed when the recovery ends.
root={root}
verified={verified}
expected={expected}
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
if ! find_file; then
  grep -qxF -- "$f" "$expected" 2>/dev/null || exit 1
  n=0
  until find_file; do
    if [ -f "$root/.damaged-$f" ]; then
      echo "{RESTORE_CHECKSUM_MISMATCH} for $f in the object store" >&2
      exit 126
    fi
    if [ -f "$root/.failed-$f" ]; then
      echo "{RESTORE_FETCH_FAILED} $f from the object store" >&2
      exit 126
    fi
    n=$((n + 1))
    if [ "$n" -gt {WAIT_POLLS} ]; then
      echo "{RESTORE_FETCH_FAILED} $f from the object store in time" >&2
      exit 126
    fi
    # Nothing to block on but the file's appearance (the fetcher renames it into place);
    # polled every 20 ms, bounded by the count above.
    sleep 0.02
  done
fi
# Segments the fetcher already checked against their seal are not hashed again here.
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
    fetch_root: &Path,
) -> Result<PathBuf> {
    let path = script_path(data_dir);
    write_owned(
        &path,
        render(
            fetch_root,
            &super::wal_fetch::verified_path(fetch_root),
            &super::wal_fetch::expected_path(fetch_root),
        )
        .as_bytes(),
        0o700,
        runner.owner(),
    )
    .await?;
    Ok(path)
}

/// What a paused preview's `restore_command` runs once its WAL fetching is over: "no such file"
/// for everything. Promotion asks for newer timeline histories, and a server that was already
/// paused may not have applied the reloaded `restore_command = 'false'` when it is resumed (its
/// pause loop re-reads the settings only on its next wake-up), so the script it may still call
/// must keep answering.
const NOTHING_MORE: &str = "#!/bin/sh\n# Trove: this preview fetches no more WAL.\nexit 1\n";

/// Replaces the restore command script beside `data_dir` with [`NOTHING_MORE`].
pub(crate) async fn write_nothing_more_script(runner: &Runner, data_dir: &Path) -> Result<()> {
    write_owned(
        &script_path(data_dir),
        NOTHING_MORE.as_bytes(),
        0o700,
        runner.owner(),
    )
    .await
}

pub(crate) async fn remove_script(data_dir: &Path) -> Result<()> {
    remove_file_if_exists(&script_path(data_dir)).await
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
        let script = render(
            Path::new("/srv/wal root"),
            Path::new("/x/data.verified"),
            Path::new("/srv/wal root/.expected"),
        );
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("root='/srv/wal root'\n"));
        assert!(script.contains("exit 126"));
    }
}
