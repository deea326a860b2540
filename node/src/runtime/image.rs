//! Images: whether one is present, pulling (only when the agent allows it), and building the
//! local images made from a static binary (`FROM scratch`) through Docker's build API.

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures::StreamExt;

use super::{DockerRuntime, RuntimeError};
use crate::images::{BUSYBOX_IMAGE, HOST_BUSYBOX, PAUSE_BINARY, PAUSE_IMAGE};

/// Whether `image` is present locally.
pub(super) async fn present(runtime: &DockerRuntime, image: &str) -> Result<bool, RuntimeError> {
    let client = runtime.client().await?;
    match client.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(err) => match runtime.error(err) {
            RuntimeError::NotFound(_) => Ok(false),
            other => Err(other),
        },
    }
}

/// Pulls `image` from its registry.
pub(super) async fn pull(runtime: &DockerRuntime, image: &str) -> Result<(), RuntimeError> {
    let client = runtime.client().await?;
    let (name, tag) = split_tag(image);
    let options = CreateImageOptions {
        from_image: Some(name.to_owned()),
        tag: Some(tag.to_owned()),
        ..Default::default()
    };
    let mut progress = client.create_image(Some(options), None, None);
    while let Some(step) = progress.next().await {
        step.map_err(|err| runtime.error(err))?;
    }
    Ok(())
}

/// Builds the pause image unless present.
pub(super) async fn ensure_pause(runtime: &DockerRuntime) -> Result<(), RuntimeError> {
    ensure_from_binary(runtime, PAUSE_IMAGE, PAUSE_BINARY).await
}

/// Builds `image` from `FROM scratch` + `binary` (its entrypoint) unless it is present.
pub(super) async fn ensure_from_binary(
    runtime: &DockerRuntime,
    image: &str,
    binary: &[u8],
) -> Result<(), RuntimeError> {
    let files = [ImageFile {
        path: "entrypoint",
        contents: ImageContents::Executable(binary),
    }];
    ensure(runtime, image, &files, Start::Entrypoint(&["/entrypoint"])).await
}

/// Builds [`BUSYBOX_IMAGE`] from the host's static busybox unless it is present: the binary
/// and a link to it for each applet it lists.
pub(super) async fn ensure_busybox(runtime: &DockerRuntime) -> Result<(), RuntimeError> {
    if present(runtime, BUSYBOX_IMAGE).await? {
        return Ok(());
    }
    let build_error = |message: String| RuntimeError::ImageBuild {
        image: BUSYBOX_IMAGE.to_owned(),
        message: format!(
            "{HOST_BUSYBOX} (busybox-static, `cargo xtask setup` installs it): {message}"
        ),
    };
    let busybox = std::fs::read(HOST_BUSYBOX).map_err(|err| build_error(err.to_string()))?;
    let list = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|err| build_error(err.to_string()))?;
    let applets = String::from_utf8_lossy(&list.stdout);
    let links: Vec<String> = applets
        .lines()
        .filter(|applet| !applet.is_empty() && *applet != "busybox" && !applet.contains('/'))
        .map(|applet| format!("bin/{applet}"))
        .collect();
    let mut files = vec![ImageFile {
        path: "bin/busybox",
        contents: ImageContents::Executable(&busybox),
    }];
    files.extend(links.iter().map(|path| ImageFile {
        path,
        contents: ImageContents::Link("busybox"),
    }));
    // As Docker Hub's busybox: no entrypoint, `sh` unless the pod names a command.
    ensure(runtime, BUSYBOX_IMAGE, &files, Start::Cmd(&["sh"])).await
}

/// One file of an image built from nothing.
#[derive(Clone, Copy, Debug)]
pub struct ImageFile<'a> {
    /// Its path from the root, without the leading `/`.
    pub path: &'a str,
    /// What it is.
    pub contents: ImageContents<'a>,
}

/// What an [`ImageFile`] is.
#[derive(Clone, Copy, Debug)]
pub enum ImageContents<'a> {
    /// An executable with these bytes.
    Executable(&'a [u8]),
    /// A symbolic link to this target.
    Link(&'a str),
}

/// What a container of an image built here runs unless its pod says otherwise.
#[derive(Clone, Copy, Debug)]
enum Start<'a> {
    /// An `ENTRYPOINT`: a pod's `args` are its arguments.
    Entrypoint(&'a [&'a str]),
    /// A `CMD` only: a pod's `args` (or `command`) replace it.
    Cmd(&'a [&'a str]),
}

/// Builds `image` (`FROM scratch`, `files`, started as `start` says) unless it is present.
async fn ensure(
    runtime: &DockerRuntime,
    image: &str,
    files: &[ImageFile<'_>],
    start: Start<'_>,
) -> Result<(), RuntimeError> {
    if present(runtime, image).await? {
        return Ok(());
    }
    let build_error = |message: String| RuntimeError::ImageBuild {
        image: image.to_owned(),
        message,
    };
    let context = build_context(files, start).map_err(|err| build_error(err.to_string()))?;
    let client = runtime.client().await?;
    let options = BuildImageOptions {
        dockerfile: String::from("Dockerfile"),
        t: Some(image.to_owned()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut progress = client.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = progress.next().await {
        match step {
            Ok(_) => {}
            Err(err) => {
                return Err(match runtime.error(err) {
                    unavailable @ RuntimeError::Unavailable(_) => unavailable,
                    other => build_error(other.to_string()),
                });
            }
        }
    }
    if present(runtime, image).await? {
        Ok(())
    } else {
        Err(build_error(String::from(
            "the build reported no error but left no image",
        )))
    }
}

/// The build context: a Dockerfile copying `rootfs/` to `/`, and `files` under `rootfs/`, as
/// a tar archive.
fn build_context(files: &[ImageFile<'_>], start: Start<'_>) -> std::io::Result<Vec<u8>> {
    let start = match start {
        Start::Entrypoint(argv) => format!("ENTRYPOINT {}", serde_json::to_string(argv)?),
        Start::Cmd(argv) => format!("CMD {}", serde_json::to_string(argv)?),
    };
    let dockerfile = format!("FROM scratch\nCOPY rootfs/ /\n{start}\n");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    for file in files {
        let path = format!("rootfs/{}", file.path);
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match file.contents {
            ImageContents::Executable(data) => {
                header.set_size(data.len() as u64);
                header.set_mode(0o755);
                archive.append_data(&mut header, &path, data)?;
            }
            ImageContents::Link(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                archive.append_link(&mut header, &path, target)?;
            }
        }
    }
    archive.into_inner()
}

/// `name[:tag]` split into name and tag (`latest` if none); a `:` in a registry host's port
/// is not a tag.
fn split_tag(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_like_docker() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("skiff/pause:1"), ("skiff/pause", "1"));
        assert_eq!(split_tag("reg:5000/app"), ("reg:5000/app", "latest"));
        assert_eq!(split_tag("reg:5000/app:v2"), ("reg:5000/app", "v2"));
    }

    #[test]
    fn build_context_holds_the_dockerfile_files_and_links() {
        let files = [
            ImageFile {
                path: "bin/busybox",
                contents: ImageContents::Executable(b"\x7fELF"),
            },
            ImageFile {
                path: "bin/sh",
                contents: ImageContents::Link("busybox"),
            },
        ];
        let tar = build_context(&files, Start::Cmd(&["sh"])).expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["Dockerfile", "rootfs/bin/busybox", "rootfs/bin/sh"]);
    }
}
