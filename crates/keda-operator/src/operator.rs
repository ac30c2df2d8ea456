//! Wires the operator together: the reflector stores, the scaling runtime, the controllers and
//! the external-metrics API, in one process.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use keda_api::ScaledObject;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::runtime::{Controller, WatchStreamExt, predicates};

// Re-exported: callers (the binary, the e2e support) have always named it `operator::OperatorConfig`.
pub use crate::config::OperatorConfig;
use crate::controllers::scaled_object::{self, Context};
use crate::controllers::trigger_auth;
use crate::events::Events;
use crate::scaling::{ScaledJobs, Scaling, ScalingConfig, Stores};
use keda_api::names::{annotations, conditions, labels};
use keda_api::{ClusterTriggerAuthentication, TriggerAuthentication};

/// What triggers a ScaledObject reconcile (spec §2.1): spec (generation), annotations (pause,
/// force-activation), labels, finalizers, deletion, and Ready turning True. Status-only writes
/// (every poll) do not.
fn reconcile_trigger(so: &ScaledObject) -> Option<u64> {
    let mut h = DefaultHasher::new();
    so.metadata.generation.hash(&mut h);
    so.annotations().hash(&mut h);
    so.labels().hash(&mut h);
    so.finalizers().hash(&mut h);
    so.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    crate::status::is_true(so.status.as_ref(), conditions::READY).hash(&mut h);
    Some(h.finish())
}

/// A TriggerAuthentication or ClusterTriggerAuthentication controller; reconciles on spec
/// (generation) changes and deletion only.
async fn run_auth_controller<K: trigger_auth::AuthKind>(
    api: Api<K>,
    ctx: Arc<trigger_auth::Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // Status-list writes by ScaledObject reconciles must not look like updates: only spec,
    // finalizers and deletion count.
    fn trigger(o: &impl kube::Resource) -> Option<u64> {
        let mut h = DefaultHasher::new();
        o.meta().generation.hash(&mut h);
        o.meta().finalizers.hash(&mut h);
        o.meta().deletion_timestamp.is_some().hash(&mut h);
        Some(h.finish())
    }
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger, Default::default());
    Controller::for_stream(stream, reader)
        .with_config(ControllerConfig::default().concurrency(2))
        .graceful_shutdown_on(shutdown)
        .run(
            trigger_auth::reconcile::<K>,
            trigger_auth::error_policy::<K>,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "trigger authentication reconcile error");
            }
        })
        .await;
}

/// The reflector writers the controllers feed; their readers went to the scaling runtime.
pub struct Writers {
    pub scaled_objects: reflector::store::Writer<ScaledObject>,
    pub scaled_jobs: reflector::store::Writer<keda_api::ScaledJob>,
    pub jobs: reflector::store::Writer<k8s_openapi::api::batch::v1::Job>,
}

/// Runs until `shutdown` resolves.
pub async fn run_controllers(
    client: kube::Client,
    config: OperatorConfig,
    scaling: Arc<Scaling>,
    writers: Writers,
    events: Events,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let scaled_objects: Api<ScaledObject> = match &config.watch_namespace {
        Some(ns) if !ns.is_empty() => Api::namespaced(client.clone(), ns),
        _ => Api::all(client.clone()),
    };
    let hpas: Api<HorizontalPodAutoscaler> = match &config.watch_namespace {
        Some(ns) if !ns.is_empty() => Api::namespaced(client.clone(), ns),
        _ => Api::all(client.clone()),
    };
    let Writers {
        scaled_objects: writer,
        scaled_jobs: sj_writer,
        jobs: job_writer,
    } = writers;
    let reader = writer.as_reader();
    let so_stream = watcher(scaled_objects, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(reconcile_trigger, Default::default());
    // Only spec changes of our HPAs matter; their status changes every HPA sync.
    let hpa_stream = watcher(
        hpas,
        watcher::Config::default().labels("app.kubernetes.io/managed-by=keda-operator"),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let auth_ctx = Arc::new(trigger_auth::Context {
        client: client.clone(),
        events: events.clone(),
        auth: scaling.triggers.auth().clone(),
    });
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let trigger_auths = run_auth_controller::<TriggerAuthentication>(
        match &config.watch_namespace {
            Some(ns) if !ns.is_empty() => Api::namespaced(client.clone(), ns),
            _ => Api::all(client.clone()),
        },
        auth_ctx.clone(),
        shutdown.clone(),
    );
    let cluster_trigger_auths = run_auth_controller::<ClusterTriggerAuthentication>(
        Api::all(client.clone()),
        auth_ctx,
        shutdown.clone(),
    );
    let job_controller = run_scaled_job_controller(
        client.clone(),
        &config,
        scaling.scaled_jobs.clone(),
        (sj_writer, job_writer),
        events.clone(),
        shutdown.clone(),
    );
    let ctx = Arc::new(Context {
        client,
        events,
        loops: scaling.scaled_objects.clone(),
        version: config.version.clone(),
    });
    let scaled_objects = Controller::for_stream(so_stream, reader)
        .owns_stream(hpa_stream)
        .with_config(ControllerConfig::default().concurrency(config.max_reconciles))
        .graceful_shutdown_on(shutdown)
        .run(scaled_object::reconcile, scaled_object::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        });
    futures::join!(
        scaled_objects,
        trigger_auths,
        cluster_trigger_auths,
        job_controller
    );
}

/// The ScaledJob controller. Jobs are read through a reflector limited to the ones labelled
/// `scaledjob.keda.sh/name`.
async fn run_scaled_job_controller(
    client: kube::Client,
    config: &OperatorConfig,
    scaled_jobs: Arc<ScaledJobs>,
    (sj_writer, job_writer): (
        reflector::store::Writer<keda_api::ScaledJob>,
        reflector::store::Writer<k8s_openapi::api::batch::v1::Job>,
    ),
    events: Events,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use crate::controllers::scaled_job;
    use k8s_openapi::api::batch::v1::Job;
    use keda_api::ScaledJob;
    let (scaled_jobs_api, jobs): (Api<ScaledJob>, Api<Job>) = match &config.watch_namespace {
        Some(ns) if !ns.is_empty() => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        _ => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let sj_reader = sj_writer.as_reader();
    let job_watch = watcher(
        jobs,
        watcher::Config::default().labels(labels::SCALED_JOB_NAME),
    )
    .default_backoff()
    .reflect(job_writer)
    .for_each(|_| futures::future::ready(()));
    let job_watch = tokio::spawn(job_watch);
    // Spec (generation) and the pause annotation trigger a reconcile; status writes do not.
    let sj_stream = watcher(scaled_jobs_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(sj_writer)
        .applied_objects()
        .predicate_filter(
            |sj: &ScaledJob| {
                let mut h = DefaultHasher::new();
                sj.metadata.generation.hash(&mut h);
                sj.annotations().get(annotations::PAUSED).hash(&mut h);
                sj.finalizers().hash(&mut h);
                sj.metadata.deletion_timestamp.is_some().hash(&mut h);
                Some(h.finish())
            },
            Default::default(),
        );
    let ctx = Arc::new(scaled_job::Context {
        client,
        events,
        loops: scaled_jobs,
    });
    Controller::for_stream(sj_stream, sj_reader)
        .with_config(ControllerConfig::default().concurrency(config.max_scaled_job_reconciles))
        .graceful_shutdown_on(shutdown)
        .run(scaled_job::reconcile, scaled_job::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "scaled job reconcile error");
            }
        })
        .await;
    job_watch.abort();
}

/// The external-metrics API as the operator serves it.
#[derive(Debug, Clone)]
pub struct MetricsApiOptions {
    pub bind: std::net::SocketAddr,
    /// Service and namespace the aggregator reaches us through (the certificate's DNS names).
    pub service: String,
    pub namespace: String,
    /// Serving material and its CA; a self-signed pair is generated when `None`.
    pub tls: Option<(crate::metrics_api::TlsMaterial, String)>,
    /// Write our CA into `APIService v1beta1.external.metrics.k8s.io` if it exists.
    pub patch_apiservice: bool,
    /// Require the aggregator's front-proxy client certificate (read from the cluster).
    pub authenticate_aggregator: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("external-metrics API: {0}")]
    MetricsApi(#[from] crate::metrics_api::MetricsApiError),
    #[error("patching APIService v1beta1.external.metrics.k8s.io: {0}")]
    ApiService(#[source] kube::Error),
}

/// A running operator; dropping it does not stop it, call [`OperatorHandle::shutdown`].
pub struct OperatorHandle {
    pub metrics_addr: std::net::SocketAddr,
    /// CA of the metrics API's serving certificate (for an APIService `caBundle`).
    pub metrics_ca_pem: String,
    pub scaling: Arc<Scaling>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl OperatorHandle {
    /// Stops the controllers, the scaling runtime and the metrics API, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.scaling.shutdown().await;
    }
}

struct ScaledObjectMetrics(Arc<crate::scaling::ScaledObjects>);

impl crate::metrics_api::MetricsProvider for ScaledObjectMetrics {
    fn get(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> futures::future::BoxFuture<
        '_,
        Result<Vec<crate::metrics_api::ExternalMetricSample>, crate::metrics_api::MetricsError>,
    > {
        let (namespace, scaled_object, metric_name) = (
            namespace.to_string(),
            scaled_object.to_string(),
            metric_name.to_string(),
        );
        Box::pin(async move {
            use crate::metrics_api::{ExternalMetricSample, MetricsError};
            use crate::scaling::ReadError;
            match self
                .0
                .read_metric(&namespace, &scaled_object, &metric_name)
                .await
            {
                Ok(values) => Ok(values
                    .into_iter()
                    .map(|(metric_name, value)| ExternalMetricSample {
                        metric_name,
                        value,
                        timestamp: std::time::SystemTime::now(),
                    })
                    .collect()),
                Err(ReadError::NotFound(_)) => Err(MetricsError::NotFound),
                Err(ReadError::Scaler(e)) => Err(MetricsError::Backend(format!(
                    "metric:{metric_name} encountered error: {e}"
                ))),
            }
        })
    }
}

/// Starts the whole operator: scale loops, controllers and the external-metrics API.
pub async fn start(
    client: kube::Client,
    config: OperatorConfig,
    metrics: MetricsApiOptions,
) -> Result<OperatorHandle, StartError> {
    use crate::metrics_api::{self, MetricsServerConfig, RequestHeaderAuth};
    let events = Events::new(client.clone(), config.pod_name.clone());
    let mut scalers = keda_scalers::ScalerSettings {
        http: config.http,
        ..keda_scalers::ScalerSettings::default()
    };
    if let Some(url) = &config.gcp_monitoring_endpoint {
        scalers.endpoints.insert(
            keda_scalers::gcp::MONITORING_SERVICE.to_owned(),
            url.clone(),
        );
    }
    let resolver = Arc::new(crate::auth::AuthResolver::new(
        client.clone(),
        config.auth.clone(),
    ));
    // Stores first: the runtime reads them, the controllers' watches fill them.
    let (so_reader, so_writer) = reflector::store();
    let (sj_reader, sj_writer) = reflector::store();
    let (job_reader, job_writer) = reflector::store();
    let scaling = Arc::new(Scaling::new(
        client.clone(),
        events.clone(),
        resolver,
        Stores {
            scaled_objects: so_reader,
            scaled_jobs: sj_reader,
            jobs: job_reader,
        },
        ScalingConfig {
            max_concurrent_polls: config.max_concurrent_polls,
            version: config.version.clone(),
            scalers,
        },
    ));
    let writers = Writers {
        scaled_objects: so_writer,
        scaled_jobs: sj_writer,
        jobs: job_writer,
    };
    let (tls, ca_pem) = match metrics.tls.clone() {
        Some(pair) => pair,
        None => metrics_api::self_signed(&metrics.service, &metrics.namespace)?,
    };
    let auth = if metrics.authenticate_aggregator {
        RequestHeaderAuth::load(client.clone()).await?
    } else {
        RequestHeaderAuth::default()
    };
    let server = metrics_api::bind(MetricsServerConfig {
        bind: metrics.bind,
        tls,
        client_ca_pem: auth.client_ca_pem,
        allowed_names: auth.allowed_names,
    })
    .await?;
    let metrics_addr = server.local_addr();
    if metrics.patch_apiservice {
        patch_apiservice_ca(&client, &ca_pem)
            .await
            .map_err(StartError::ApiService)?;
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let provider: Arc<dyn metrics_api::MetricsProvider> =
        Arc::new(ScaledObjectMetrics(scaling.scaled_objects.clone()));
    let metrics_task = tokio::spawn({
        let shutdown = wait_stop(stop_rx.clone());
        async move {
            if let Err(e) = server.serve(provider, shutdown).await {
                tracing::error!(error = %e, "external-metrics API stopped");
            }
        }
    });
    let controller_task = tokio::spawn(run_controllers(
        client,
        config,
        scaling.clone(),
        writers,
        events,
        wait_stop(stop_rx),
    ));
    Ok(OperatorHandle {
        metrics_addr,
        metrics_ca_pem: ca_pem,
        scaling,
        stop,
        tasks: vec![controller_task, metrics_task],
    })
}

async fn patch_apiservice_ca(client: &kube::Client, ca_pem: &str) -> Result<(), kube::Error> {
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    let api: Api<APIService> = Api::all(client.clone());
    let name = "v1beta1.external.metrics.k8s.io";
    if api.get_opt(name).await?.is_none() {
        return Ok(());
    }
    let patch = serde_json::json!({"spec": {"caBundle": k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()), "insecureSkipTLSVerify": false}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
