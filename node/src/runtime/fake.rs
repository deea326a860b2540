//! [`FakeRuntime`]: an in-memory [`ContainerRuntime`] for unit tests of the kubelet's logic
//! (sync loop, pod worker, orphan clean-up), as youki and aya test over a fake syscall layer.
//! It keeps containers with their labels and states, records every call that changes
//! something in order, and lets a test make containers exit, images go missing or the runtime
//! go down. It runs nothing; the end-to-end tests drive real Docker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream};

use super::{
    ContainerDetails, ContainerEvent, ContainerInfo, ContainerKind, ContainerPhase,
    ContainerRuntime, ContainerSpec, ContainerState, ContainerStats, ExecSession, ExecSpec,
    LogRecord, NodeNetwork, PodRef, RuntimeError, SANDBOX_CONTAINER_NAME, SandboxSpec, Termination,
};

/// A call that changed (or tried to change) the fake's containers or images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A sandbox was created and started (its id).
    CreateSandbox(String),
    /// A container was created (its id).
    Create(String),
    /// A container was started.
    Start(String),
    /// A container was stopped with this grace period.
    Stop(String, Duration),
    /// A container was removed.
    Remove(String),
    /// An image was pulled.
    Pull(String),
}

/// Container ids are `<name>.<attempt>` (`POD.0`, `app.1`), so tests read like the pod spec.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, ContainerDetails>,
    images: HashSet<String>,
    calls: Vec<Call>,
    down: bool,
    refuse_sandbox: Option<String>,
    /// Sandbox creations still to panic.
    panicking_sandboxes: u32,
    clock: i64,
    /// Exit codes of commands run in containers, by container id (0 when not set).
    exec_codes: HashMap<String, i64>,
    /// Exit codes of the execs started, by exec id.
    execs: HashMap<String, i64>,
}

impl FakeRuntime {
    /// A runtime with these images present.
    pub fn with_images(images: &[&str]) -> Self {
        let fake = FakeRuntime::default();
        fake.lock().images = images.iter().map(|i| (*i).to_owned()).collect();
        fake
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls so far, forgetting them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// Every container, in detail.
    pub fn containers(&self) -> Vec<ContainerDetails> {
        self.lock().containers.values().cloned().collect()
    }

    /// Puts a container in place as if an earlier agent had made it.
    pub fn insert(&self, details: ContainerDetails) {
        self.lock()
            .containers
            .insert(details.info.id.clone(), details);
    }

    /// Makes container `id` exit with `code` at `finished_at` (it ran for one second).
    pub fn exit(&self, id: &str, code: i32, finished_at: DateTime<Utc>) {
        if let Some(container) = self.lock().containers.get_mut(id) {
            container.state = exited(code, finished_at);
            container.info.phase = ContainerPhase::Exited;
        }
    }

    /// Makes every call fail as if the daemon were down (or back up).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Makes sandbox creation fail with `message` (`None`: succeed again).
    pub fn refuse_sandboxes(&self, message: Option<&str>) {
        self.lock().refuse_sandbox = message.map(str::to_owned);
    }

    /// Makes the next `times` sandbox creations panic, as a bug in the caller would.
    pub fn panic_on_sandboxes(&self, times: u32) {
        self.lock().panicking_sandboxes = times;
    }

    /// Makes every command run in container `id` exit with `code`.
    pub fn set_exec_code(&self, id: &str, code: i64) {
        self.lock().exec_codes.insert(id.to_owned(), code);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, or [`RuntimeError::Unavailable`] while the fake is down.
    fn up(&self) -> Result<MutexGuard<'_, State>, RuntimeError> {
        let state = self.lock();
        if state.down {
            return Err(RuntimeError::Unavailable(String::from("the fake is down")));
        }
        Ok(state)
    }
}

/// An exited container's state: it ran for one second until `finished_at`.
pub fn exited(code: i32, finished_at: DateTime<Utc>) -> ContainerState {
    ContainerState::Exited(Termination {
        exit_code: code,
        oom_killed: false,
        started_at: Some(finished_at - chrono::Duration::seconds(1)),
        finished_at: Some(finished_at),
        error: None,
    })
}

/// A container of `pod` in detail, as [`FakeRuntime::insert`] takes it (id `<name>.<attempt>`).
pub fn container(
    pod: &PodRef,
    kind: ContainerKind,
    name: &str,
    attempt: u32,
    spec_hash: &str,
    state: ContainerState,
) -> ContainerDetails {
    let phase = match &state {
        ContainerState::Created => ContainerPhase::Created,
        ContainerState::Running { .. } => ContainerPhase::Running,
        ContainerState::Exited(_) => ContainerPhase::Exited,
        ContainerState::Unknown(_) => ContainerPhase::Unknown,
    };
    ContainerDetails {
        info: ContainerInfo {
            id: format!("{name}.{attempt}"),
            pod: pod.clone(),
            kind,
            name: name.to_owned(),
            attempt,
            spec_hash: spec_hash.to_owned(),
            image: String::new(),
            phase,
            created: 0,
            grace_seconds: 30,
        },
        state,
        image_id: String::from("sha256:fake"),
        ip: (kind == ContainerKind::Sandbox).then(|| String::from("10.244.0.2")),
        plumbed_ip: None,
        host_network: false,
        network_pid: None,
    }
}

impl State {
    fn add(&mut self, mut details: ContainerDetails) -> String {
        self.clock += 1;
        details.info.created = self.clock;
        let id = details.info.id.clone();
        self.containers.insert(id.clone(), details);
        id
    }
}

impl ContainerRuntime for FakeRuntime {
    async fn version(&self) -> Result<String, RuntimeError> {
        self.up().map(|_| String::from("fake://1"))
    }

    async fn prepare_node(&self, _network: &NodeNetwork) -> Result<(), RuntimeError> {
        self.up().map(drop)
    }

    async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.up()?.images.contains(image))
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        let mut state = self.up()?;
        state.calls.push(Call::Pull(image.to_owned()));
        Err(RuntimeError::Rejected(format!(
            "the fake has no registry ({image})"
        )))
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<String, RuntimeError> {
        let mut state = self.up()?;
        if state.panicking_sandboxes > 0 {
            state.panicking_sandboxes -= 1;
            drop(state);
            panic!("the fake panics on creating a sandbox");
        }
        if let Some(message) = state.refuse_sandbox.clone() {
            return Err(RuntimeError::Rejected(message));
        }
        let mut details = container(
            &spec.pod,
            ContainerKind::Sandbox,
            SANDBOX_CONTAINER_NAME,
            spec.attempt,
            "",
            ContainerState::Running {
                started_at: Some(Utc::now()),
            },
        );
        details.info.grace_seconds = spec.grace_seconds;
        let id = state.add(details);
        state.calls.push(Call::CreateSandbox(id.clone()));
        Ok(id)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut state = self.up()?;
        if !state.images.contains(&spec.image) {
            return Err(RuntimeError::ImageNotPresent(spec.image.clone()));
        }
        let pod = spec.pod.clone().unwrap_or(PodRef {
            uid: String::new(),
            name: String::new(),
            namespace: String::new(),
        });
        let kind = if spec.init {
            ContainerKind::Init
        } else {
            ContainerKind::App
        };
        let mut details = container(
            &pod,
            kind,
            &spec.name,
            spec.attempt,
            &spec.spec_hash,
            ContainerState::Created,
        );
        if state.containers.contains_key(&details.info.id) {
            return Err(RuntimeError::Conflict(details.info.id));
        }
        details.info.image = spec.image.clone();
        details.info.grace_seconds = spec.grace_seconds;
        let id = state.add(details);
        state.calls.push(Call::Create(id.clone()));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut state = self.up()?;
        let container = state
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        container.state = ContainerState::Running {
            started_at: Some(Utc::now()),
        };
        container.info.phase = ContainerPhase::Running;
        state.calls.push(Call::Start(id.to_owned()));
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let mut state = self.up()?;
        state.calls.push(Call::Stop(id.to_owned(), grace));
        if let Some(container) = state.containers.get_mut(id)
            && container.info.phase == ContainerPhase::Running
        {
            // SIGTERM, which the fake's processes obey.
            container.state = exited(143, Utc::now());
            container.info.phase = ContainerPhase::Exited;
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut state = self.up()?;
        state.calls.push(Call::Remove(id.to_owned()));
        state.containers.remove(id);
        Ok(())
    }

    async fn list_pod_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Ok(self
            .up()?
            .containers
            .values()
            .filter(|c| pod_uid.is_none_or(|uid| c.info.pod.uid == uid))
            .map(|c| c.info.clone())
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerDetails, RuntimeError> {
        self.up()?
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }

    fn logs(
        &self,
        _id: &str,
        _since: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<LogRecord, RuntimeError>> + Send + 'static {
        stream::empty()
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let state = self.up()?;
        let container = state
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
        // Made-up but stable figures, so formatting is testable.
        Ok(match container.state {
            ContainerState::Running { .. } => ContainerStats {
                usage_core_nanoseconds: Some(1_000_000_000),
                usage_nano_cores: Some(10_000_000),
                memory_usage_bytes: Some(8 << 20),
                memory_working_set_bytes: Some(4 << 20),
                memory_rss_bytes: Some(2 << 20),
                memory_limit_bytes: None,
                page_faults: Some(100),
                major_page_faults: Some(1),
            },
            _ => ContainerStats::default(),
        })
    }

    async fn exec(&self, id: &str, _spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
        let mut state = self.up()?;
        match state.containers.get(id).map(|c| c.info.phase) {
            Some(ContainerPhase::Running) => {}
            Some(_) => return Err(RuntimeError::Conflict(format!("{id} is not running"))),
            None => return Err(RuntimeError::NotFound(id.to_owned())),
        }
        let code = state.exec_codes.get(id).copied().unwrap_or(0);
        let exec_id = format!("exec-{}", state.execs.len());
        state.execs.insert(exec_id.clone(), code);
        Ok(ExecSession {
            id: exec_id,
            output: stream::empty().boxed(),
            input: Box::pin(tokio::io::sink()),
        })
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let state = self.up()?;
        match state.execs.get(exec_id) {
            Some(code) => Ok(Some(*code)),
            None => Err(RuntimeError::NotFound(exec_id.to_owned())),
        }
    }

    async fn attach(&self, id: &str, _spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
        let state = self.up()?;
        match state.containers.get(id).map(|c| c.info.phase) {
            Some(ContainerPhase::Running) => Ok(ExecSession {
                id: id.to_owned(),
                output: stream::empty().boxed(),
                input: Box::pin(tokio::io::sink()),
            }),
            Some(_) => Err(RuntimeError::Conflict(format!("{id} is not running"))),
            None => Err(RuntimeError::NotFound(id.to_owned())),
        }
    }

    async fn resize_container(
        &self,
        id: &str,
        _width: u16,
        _height: u16,
    ) -> Result<(), RuntimeError> {
        let state = self.up()?;
        if state.containers.contains_key(id) {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(id.to_owned()))
        }
    }

    async fn resize_exec(
        &self,
        exec_id: &str,
        _width: u16,
        _height: u16,
    ) -> Result<(), RuntimeError> {
        let state = self.up()?;
        if state.execs.contains_key(exec_id) {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(exec_id.to_owned()))
        }
    }

    fn events(&self) -> impl Stream<Item = Result<ContainerEvent, RuntimeError>> + Send + 'static {
        stream::empty()
    }
}
