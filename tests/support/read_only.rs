//! A directory this process may read and not write, as a read-only filesystem or a file of
//! another user's is.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Makes `dir` read-only to this process until the guard is dropped: a read-only bind mount
/// of it over itself when the process runs as root (file permissions do not stop root), its
/// files' and its own write permissions taken away otherwise. `None`, with a note on stderr,
/// when neither can be done (root without the right to mount).
pub fn read_only(dir: &Path) -> Option<ReadOnly> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !root {
        for entry in std::fs::read_dir(dir).unwrap() {
            set_writable(&entry.unwrap().path(), false);
        }
        set_writable(dir, false);
        return Some(ReadOnly {
            dir: dir.to_owned(),
            mounted: false,
        });
    }
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .arg(dir)
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !mount(&["--bind"]) {
        eprintln!(
            "note: cannot bind-mount {} read-only: not checked",
            dir.display()
        );
        return None;
    }
    // Unmounted by the guard, or, if the process dies first, once it is gone.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; umount "$2" 2>/dev/null"#)
        .arg("sh")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ReadOnly {
        dir: dir.to_owned(),
        mounted: true,
    };
    if !mount(&["-o", "remount,bind,ro"]) {
        eprintln!(
            "note: cannot remount {} read-only: not checked",
            dir.display()
        );
        return None;
    }
    Some(guard)
}

/// Takes away or gives back the owner's right to write `path`.
fn set_writable(path: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    let mode = permissions.mode();
    permissions.set_mode(if writable {
        mode | 0o200
    } else {
        mode & !0o222
    });
    std::fs::set_permissions(path, permissions).unwrap();
}

/// A directory made read-only by [`read_only`]; writable again when dropped.
pub struct ReadOnly {
    dir: PathBuf,
    mounted: bool,
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        } else {
            set_writable(&self.dir, true);
            for entry in std::fs::read_dir(&self.dir).unwrap() {
                set_writable(&entry.unwrap().path(), true);
            }
        }
    }
}
