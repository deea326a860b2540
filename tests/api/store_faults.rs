//! The embedded store on a disk that fills up: on a tmpfs of 32 MiB the test mounts, a
//! create that finds no space fails (503) and `/readyz` turns red; once space is freed the
//! store commits again by itself, `/readyz` is green, writes go on, and every write that was
//! acknowledged is there, also after a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use skiff::master::{Master, MasterOptions};

use crate::Client;

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `dir` with a file, leaving about `left` bytes free.
fn fill(dir: &Path, left: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        let free = fs_free(dir);
        if free <= left + chunk.len() as u64 {
            break;
        }
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    path
}

fn fs_free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

async fn readyz(master: &Master) -> u16 {
    master
        .http()
        .get(format!("{}/readyz", master.server_url()))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn a_full_disk_turns_readyz_red_and_writes_resume_when_it_has_room() {
    let disk = Tmpfs::mount("32m");
    let state_dir = disk.path().join("state");
    let mut master = Master::start(MasterOptions {
        state_dir: Some(state_dir.clone()),
        extra_args: crate::api_only(),
        ..Default::default()
    })
    .expect("starting skiff-master");
    let admin = Client::new(&master);
    assert_eq!(readyz(&master).await, 200);
    let filler = fill(disk.path(), 2 << 20);

    // Writes until the disk is full: each acknowledged one is remembered.
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let name = format!("fill-{i}");
        let (code, body) = admin
            .post(
                "/api/v1/namespaces/default/configmaps",
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                    "data": {"v": "z".repeat(200_000)}}),
            )
            .await;
        match code {
            201 => acknowledged.push(name),
            _ => {
                refused = Some((code, body));
                break;
            }
        }
    }
    let (code, body) = refused.expect("the disk fills up");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable");
    assert_eq!(readyz(&master).await, 503);

    // Room again: the store commits by itself, /readyz turns green, writes go on.
    std::fs::remove_file(&filler).expect("removing the filler");
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&master).await != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz stayed red:\n{}",
            master.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, body) = admin
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    acknowledged.push(String::from("after"));

    // Nothing acknowledged is lost, also after a restart.
    for round in ["running", "restarted"] {
        // A new client each round: the old connections end with the old process.
        let admin = Client::new(&master);
        for name in &acknowledged {
            let (code, _) = admin
                .json(
                    reqwest::Method::GET,
                    &format!("/api/v1/namespaces/default/configmaps/{name}"),
                    None,
                )
                .await;
            assert_eq!(code, 200, "{name} ({round})");
        }
        if round == "running" {
            master.restart().expect("restarting skiff-master");
        }
    }
}
