//! Serving: the TLS listener, the router (health, discovery, OpenAPI, metrics, resources),
//! authentication and request metrics around every request.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::Ipv4Net;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::allocator::{NodePorts, ServiceIps};
use super::authentication::{ADMIN_USER, Authenticator, CertificateUser, MASTERS_GROUP, UserInfo};
use super::authorization::{
    Attributes, Authorizer, Rbac, bootstrap_policy, impersonation, reviews,
};
use super::kubelet_client::KubeletClient;
use super::metrics::{Metrics, RequestInfo};
use super::openapi::OpenApi;
use super::pki::Credentials;
use super::request::{self, Query};
use super::service_account_tokens::TokenIssuer;
use super::status::ApiError;
use super::watch_cache::WatchCache;
use super::{
    ApiServer, authentication, bootstrap, discovery, json_value, metrics_api, node_proxy, overload,
};
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::encryption::{EncryptedStore, Encryption};
use crate::store::etcd::EtcdStore;

/// How the API server is started.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory of credentials, data and the kubeconfig (`.skiff`).
    pub state_dir: PathBuf,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// The address pods reach the API server at (the `kubernetes` Service's endpoint); it is
    /// listened on too, on the same port. `None`: the bind address (loopback by default,
    /// which pods cannot reach).
    pub advertise_address: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one (the kubeconfig names the real one).
    pub secure_port: u16,
    /// etcd endpoints; empty = the embedded store in `<state_dir>/data`.
    pub etcd_endpoints: Vec<String>,
    /// TLS to etcd, when its endpoints are `https://`.
    pub etcd_tls: Option<crate::store::etcd::EtcdTls>,
    /// The Service ClusterIP range.
    pub service_cidr: Ipv4Net,
    /// An `EncryptionConfiguration` file: which resources are encrypted at rest, and how.
    pub encryption_provider_config: Option<PathBuf>,
    /// In-flight limits and the request timeout.
    pub limits: overload::Limits,
    /// How often the store's history is compacted (`--etcd-compaction-interval`; zero: never).
    pub compaction_interval: Duration,
}

/// How clients reach a server that is listening: what [`serve`] reports.
#[derive(Clone, Debug)]
pub struct Listening {
    /// `https://127.0.0.1:<port>`.
    pub server_url: String,
    /// PEM of the cluster CA, which signed the serving certificate.
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
}

/// Open the store, bind, write the kubeconfig and serve until `shutdown` completes,
/// reporting through `ready` how to reach the server once it listens (for components of the
/// master that are its clients, like the scheduler and the controllers).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
    ready: Option<tokio::sync::oneshot::Sender<Listening>>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state directory {}", config.state_dir.display()))?;
    let advertise_ip = config
        .advertise_address
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(config.bind_address);
    let credentials = Credentials::load_or_create(
        &config.state_dir,
        &[
            config.bind_address,
            advertise_ip,
            IpAddr::V4(crate::apiserver::allocator::first_address(
                config.service_cidr,
            )),
        ],
    )?;
    let store: Arc<dyn Store> = if config.etcd_endpoints.is_empty() {
        let dir = config.state_dir.join("data");
        info!(path = %dir.display(), "using the embedded store");
        Arc::new(
            EmbeddedStore::open(&dir)
                .with_context(|| format!("opening the embedded store in {}", dir.display()))?,
        )
    } else {
        info!(endpoints = ?config.etcd_endpoints, "using etcd");
        // As kube-apiserver: a master started before its etcd waits for it.
        let connect = || EtcdStore::connect_with(&config.etcd_endpoints, config.etcd_tls.as_ref());
        match until_ready("connecting to etcd", connect, &mut shutdown).await {
            Some(store) => Arc::new(store),
            None => return Ok(()),
        }
    };

    let store: Arc<dyn Store> = match &config.encryption_provider_config {
        Some(path) => {
            let encryption = Encryption::load(path)
                .with_context(|| format!("the encryption configuration {}", path.display()))?;
            info!(path = %path.display(), "encrypting resources at rest");
            Arc::new(EncryptedStore::new(store, encryption))
        }
        None => store,
    };

    let listener = TcpListener::bind((config.bind_address, config.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", config.bind_address, config.secure_port))?;
    let local = listener.local_addr()?;
    // Where pods reach the server: the advertise address, unless the first listener covers it.
    let pod_listener =
        if config.bind_address.is_unspecified() || advertise_ip == config.bind_address {
            None
        } else {
            Some(
                TcpListener::bind((advertise_ip, local.port()))
                    .await
                    .with_context(|| format!("binding {advertise_ip}:{}", local.port()))?,
            )
        };
    let endpoint = SocketAddr::new(
        if advertise_ip.is_unspecified() {
            [127, 0, 0, 1].into()
        } else {
            advertise_ip
        },
        local.port(),
    );
    let client_host: IpAddr = if config.bind_address.is_unspecified() {
        [127, 0, 0, 1].into()
    } else {
        config.bind_address
    };
    let advertise = SocketAddr::new(client_host, local.port());

    let fill = || WatchCache::start(store.clone());
    let Some(watch_cache) = until_ready("filling the watch cache", fill, &mut shutdown).await
    else {
        return Ok(());
    };
    if !config.compaction_interval.is_zero() {
        tokio::spawn(compact_every(store.clone(), config.compaction_interval));
    }
    let token_issuer = TokenIssuer::new(
        &credentials.service_account_key_pem,
        &credentials.service_account_public_pem,
    )
    .context("the ServiceAccount token signing key")?;
    let authorizer = Authorizer {
        rbac: Rbac::new(watch_cache.clone()),
        cache: watch_cache.clone(),
    };
    let authenticator = Authenticator::new(vec![(
        credentials.admin_token.clone(),
        UserInfo::new(ADMIN_USER, &[MASTERS_GROUP]),
    )])
    .with_service_accounts(token_issuer, watch_cache.clone());
    let api = Arc::new(ApiServer {
        authenticator,
        watch_cache,
        service_ips: ServiceIps::new(config.service_cidr, store.clone()),
        node_ports: NodePorts::new(store.clone()),
        store,
        metrics: Metrics::new(),
        openapi: OpenApi::new(),
        authorizer,
        advertise_address: advertise.to_string(),
        kubelet: KubeletClient::new(
            &credentials.kubelet_client_cert_pem,
            &credentials.kubelet_client_key_pem,
            &credentials.ca_pem,
        )
        .context("the client certificate for node agents")?,
        quota_locks: Default::default(),
        inflight: overload::InFlight::new(config.limits),
    });
    bootstrap::ensure_defaults(&api, endpoint)
        .await
        .context("creating the default namespaces and the kubernetes Service")?;
    bootstrap_policy::ensure(&api)
        .await
        .context("creating the default RBAC roles and bindings")?;
    bootstrap::ensure_cluster_info(&api, &format!("https://{endpoint}"), &credentials.ca_pem)
        .await
        .context("publishing the cluster-info ConfigMap")?;
    // As kube-apiserver's system-namespaces controller and endpoint reconciler do: what a user
    // deletes of them comes back.
    let reconciler = tokio::spawn({
        let api = api.clone();
        async move {
            let mut every = tokio::time::interval(bootstrap::RECONCILE_PERIOD);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(err) = bootstrap::ensure_defaults(&api, endpoint).await {
                    warn!("putting the default namespaces and the kubernetes Service back: {err}");
                }
            }
        }
    });

    let kubeconfig = config.state_dir.join("kubeconfig");
    let server_url = format!("https://{advertise}");
    // The admin's kubeconfig appearing is the sign that the server is up.
    credentials.write_kubeconfig(&kubeconfig, &server_url)?;
    info!(address = %local, kubeconfig = %kubeconfig.display(), "API server listening");
    if let Some(ready) = ready {
        let _ = ready.send(Listening {
            server_url: format!("https://{advertise}"),
            ca_pem: credentials.ca_pem.clone(),
            admin_token: credentials.admin_token.clone(),
        });
    }

    let router = router(api.clone());
    let acceptor = TlsAcceptor::from(credentials.server_config()?);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = accept_either(&listener, pod_listener.as_ref()) => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            // A client that never finishes its handshake must not hold a task forever.
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return debug!(%peer, "TLS handshake timed out"),
                };
            // The subject of the client's certificate, if it sent one the CA signed.
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| authentication::certificate_user(leaf.as_ref()))
                .map(CertificateUser);
            let service = TowerToHyperService::new(tower::ServiceExt::map_request(
                router,
                move |mut request: Request<hyper::body::Incoming>| {
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    request
                },
            ));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(1000);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    reconciler.abort();
    info!("API server shutting down");
    Ok(())
}

/// What `attempt` makes, tried again (after 1 s, doubling to 5 s, each failure logged) until
/// it works; None if `shutdown` comes first.
async fn until_ready<T, F: Future<Output = Result<T, crate::store::StoreError>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<T> {
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::select! {
            made = attempt() => match made {
                Ok(made) => return Some(made),
                Err(e) => warn!(error = %e, retry_in = ?backoff, "{what}: waiting for the store"),
            },
            () = shutdown.as_mut() => return None,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.as_mut() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Compacts the store's history every `interval`, as kube-apiserver compacts etcd: up to
/// the revision it had one interval before, so watchers that far behind can still resume.
async fn compact_every(store: Arc<dyn Store>, interval: Duration) {
    let mut previous: Option<crate::store::Revision> = None;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        ticker.tick().await;
        if let Some(revision) = previous {
            match store.compact(revision).await {
                Ok(()) => info!(revision, "compacted the store's history"),
                // Compacted that far already (another master did): nothing to do.
                Err(crate::store::StoreError::Compacted { .. }) => {}
                Err(e) => warn!(error = %e, revision, "compacting the store's history"),
            }
        }
        previous = store.revision().await.ok();
    }
}

/// The next connection on `first` or `second`.
async fn accept_either(
    first: &TcpListener,
    second: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match second {
        Some(second) => tokio::select! {
            accepted = first.accept() => accepted,
            accepted = second.accept() => accepted,
        },
        None => first.accept().await,
    }
}

/// The HTTP routes.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(
            api.clone(),
            authenticate_and_measure,
        ))
        .with_state(api)
}

async fn authenticate_and_measure(
    State(api): State<Arc<ApiServer>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let user = api.authenticator.authenticate(
        request.headers(),
        request.extensions().get::<CertificateUser>(),
    );
    let response = match user {
        None if authentication::is_public(&path)
            && matches!(method, Method::GET | Method::HEAD) =>
        {
            next.run(request).await
        }
        None => {
            debug!(%method, %path, "unauthorized");
            return ApiError::Unauthorized.into_response();
        }
        Some(user) => match authorize(&api, user, &request) {
            Ok((user, attributes)) => {
                serve_within_limits(&api, user, &attributes, request, next).await
            }
            Err(e) => {
                debug!(%method, %path, error = %e, "refused");
                e.into_response()
            }
        },
    };
    let info = response
        .extensions()
        .get::<RequestInfo>()
        .cloned()
        .unwrap_or(RequestInfo {
            verb: "get",
            resource: String::new(),
        });
    let code = response.status().as_u16();
    if info.verb != "watch" {
        api.metrics
            .observe(&info, code, started.elapsed().as_secs_f64());
    }
    debug!(%method, %path, code, elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

/// Serves `request` for `user` in a seat (429 when there is none), held until the response
/// body is sent, and, unless it runs for long, within the request timeout (504 after it;
/// the handler goes on and finishes).
async fn serve_within_limits(
    api: &ApiServer,
    user: UserInfo,
    attributes: &Attributes,
    request: Request,
    next: Next,
) -> Response {
    let seat = match api.inflight.admit(&user, attributes) {
        Ok(seat) => seat,
        Err(e) => {
            debug!(user = %user.username, verb = %attributes.verb, "no seat: {e}");
            api.metrics.dropped(overload::is_mutating(attributes));
            return e.into_response();
        }
    };
    if overload::is_long_running(attributes) {
        return authentication::serve_for(user, next.run(request)).await;
    }
    let asked = Query::parse(request.uri().query())
        .ok()
        .and_then(|q| q.get("timeout").map(str::to_owned));
    let timeout = api.inflight.timeout(asked.as_deref());
    let handler = tokio::spawn(async move {
        let response = authentication::serve_for(user, next.run(request)).await;
        // The seat is held until the body is written (as kube-apiserver's handler writes it
        // within the filter): a big list costs its seat while it goes out.
        response.map(|body| {
            axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                let _held = &seat;
                frame
            }))
        })
    });
    match tokio::time::timeout(timeout, handler).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => ApiError::Internal(format!("the request handler failed: {e}")).into_response(),
        Err(_) => ApiError::Timeout(String::from(
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        ))
        .into_response(),
    }
}

/// The user a request is served for (its own, or the one it impersonates) and what it asks,
/// if it may do it.
fn authorize(
    api: &ApiServer,
    user: UserInfo,
    request: &Request,
) -> Result<(UserInfo, Attributes), ApiError> {
    let user = match impersonation::impersonated(&api.authorizer, &user, request.headers())? {
        Some(impersonated) => impersonated,
        None => user,
    };
    let attributes = Attributes::of_request(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    api.authorizer.check(&user, &attributes)?;
    Ok((user, attributes))
}

async fn dispatch(State(api): State<Arc<ApiServer>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let ok_text = |text: &'static str| (StatusCode::OK, text).into_response();
    match segments.as_slice() {
        ["healthz" | "livez"] => ok_text("ok"),
        ["readyz"] => match api.store.ready().await {
            Ok(()) => ok_text("ok"),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response(),
        },
        ["version"] => json_value(StatusCode::OK, &to_json(&discovery::version())),
        ["metrics"] => {
            let mut resp = (StatusCode::OK, api.metrics.render()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        ["api"] => json_value(
            StatusCode::OK,
            &to_json(&discovery::core_versions(&api.advertise_address)),
        ),
        ["apis"] => json_value(StatusCode::OK, &to_json(&discovery::groups())),
        ["api", version] => discovery_or_404(
            discovery::resource_list("", version).map(|l| to_json(&l)),
            path,
        ),
        ["apis", group] => {
            discovery_or_404(discovery::group_info(group).map(|g| to_json(&g)), path)
        }
        ["apis", group, version] => discovery_or_404(
            discovery::resource_list(group, version).map(|l| to_json(&l)),
            path,
        ),
        ["openapi", "v3"] => json_value(StatusCode::OK, api.openapi.index()),
        ["openapi", "v3", rest @ ..] => {
            discovery_or_404(api.openapi.document(&rest.join("/")).cloned(), path)
        }
        ["api", "v1", "nodes", id, "proxy", ..] => {
            let (id, rest) = (id.to_string(), node_proxy::rest_of_path(path));
            let verb = proxy_verb(&parts.method);
            let result = api
                .node_proxy(
                    parts.method.clone(),
                    &id,
                    rest,
                    parts.uri.query(),
                    &parts.headers,
                    body,
                )
                .await;
            let mut response = result.unwrap_or_else(|e| {
                if e.code().is_server_error() {
                    warn!(method = %parts.method, %path, error = %e, "node proxy request failed");
                }
                e.into_response()
            });
            response.extensions_mut().insert(RequestInfo {
                verb,
                resource: String::from("nodes/proxy"),
            });
            response
        }
        [
            "api",
            "v1",
            "namespaces",
            _,
            "pods",
            _,
            sub @ ("exec" | "attach" | "portforward"),
        ] => {
            let resource = format!("pods/{sub}");
            let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            let result = api
                .pod_connect(
                    &parts.method,
                    path,
                    parts.uri.query(),
                    &parts.headers,
                    upgrade,
                )
                .await;
            let mut response = result.unwrap_or_else(|e| {
                if e.code().is_server_error() {
                    warn!(method = %parts.method, %path, error = %e, "{resource} failed");
                }
                e.into_response()
            });
            response.extensions_mut().insert(RequestInfo {
                verb: proxy_verb(&parts.method),
                resource,
            });
            response
        }
        [
            "apis",
            group @ (reviews::AUTHORIZATION_GROUP | reviews::AUTHENTICATION_GROUP),
            reviews::VERSION,
            rest @ ..,
        ] if !rest.is_empty() => {
            let resource = rest.last().copied().unwrap_or_default().to_owned();
            let result = match (&parts.method, authentication::requester()) {
                (&Method::POST, Some(user)) => match request::read_body(body).await {
                    Ok(body) => reviews::create(&api, &user, group, rest, &parts.headers, &body),
                    Err(e) => Err(e),
                },
                (&Method::POST, None) => Err(ApiError::Unauthorized),
                _ => Err(ApiError::MethodNotAllowed),
            };
            let result = match result {
                Ok(response) => super::in_protobuf_if_asked(response, &parts.headers).await,
                Err(e) => Err(e),
            };
            let mut response = result.unwrap_or_else(IntoResponse::into_response);
            response.extensions_mut().insert(RequestInfo {
                verb: "create",
                resource,
            });
            response
        }
        ["apis", metrics_api::GROUP, metrics_api::VERSION, rest @ ..] if !rest.is_empty() => {
            let result = match (metrics_api::Query::parse(rest), &parts.method) {
                (Some(query), &Method::GET) => {
                    match Query::parse(parts.uri.query()).and_then(|q| q.label_selector()) {
                        Ok(selector) => api.resource_metrics(query, &selector).await,
                        Err(err) => Err(err),
                    }
                }
                (Some(_), _) => Err(ApiError::MethodNotAllowed),
                (None, _) => Err(ApiError::NotFoundPath(format!(
                    "the server could not find the requested resource ({path})"
                ))),
            };
            let mut response = match result {
                Ok(value) => json_value(StatusCode::OK, &value),
                Err(e) => e.into_response(),
            };
            response.extensions_mut().insert(RequestInfo {
                verb: "get",
                resource: String::from("metrics.k8s.io"),
            });
            response
        }
        ["api" | "apis", ..] => {
            let (result, info) = api
                .handle_resource(
                    parts.method.clone(),
                    path,
                    parts.uri.query(),
                    &parts.headers,
                    body,
                )
                .await;
            let mut response = match result {
                Ok(r) => r,
                Err(e) => {
                    if e.code().is_server_error() {
                        warn!(method = %parts.method, %path, error = %e, "request failed");
                    }
                    e.into_response()
                }
            };
            response.extensions_mut().insert(info);
            response
        }
        _ => ApiError::NotFoundPath(format!(
            "the server could not find the requested resource ({path})"
        ))
        .into_response(),
    }
}

/// The Kubernetes verb of a connect (proxy) request.
fn proxy_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "proxy",
    }
}

fn discovery_or_404(value: Option<serde_json::Value>, path: &str) -> Response {
    match value {
        Some(v) => json_value(StatusCode::OK, &v),
        None => ApiError::NotFoundPath(format!(
            "the server could not find the requested resource ({path})"
        ))
        .into_response(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
