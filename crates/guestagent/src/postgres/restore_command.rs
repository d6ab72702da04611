//! The `restore_command` a point-in-time recovery uses: a small shell script that serves WAL files
//! from the instance's WAL store and tells "absent" apart from "broken" (postgres-pitr.md P7).

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
fn render(wal_root: &Path) -> String {
    let root = shell_quote(&wal_root.to_string_lossy());
    format!(
        r#"#!/bin/sh
# Written by the Trove guest agent for one recovery; removed when the recovery ends.
root={root}
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
if [ -n "$sidecar" ] && [ -f "$sidecar" ]; then
  want=$(cut -d ' ' -f 1 "$sidecar") || exit 126
  have=$(sha256sum "$src" | cut -d ' ' -f 1) || exit 126
  if [ "$want" != "$have" ]; then
    echo "trove restore_command: checksum mismatch for $src" >&2
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
    write_owned(&path, render(wal_root).as_bytes(), 0o700, runner.owner()).await?;
    Ok(path)
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
        let script = render(Path::new("/srv/wal root"));
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("root='/srv/wal root'\n"));
        assert!(script.contains("exit 126"));
    }
}
