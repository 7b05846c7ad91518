//! The `/v1` endpoints: each one calls what the CLI's connection calls (the intake in
//! [`crate::jobs`], the operator requests in `server::admin`), and says it in JSON.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorJson};
use super::idempotency::{self, Idempotency};
use super::Api;
use crate::alarms::Alarm;
use crate::job::{JobId, TesterId};
use crate::jobs::{CancelRefusal, Submission};
use crate::journal::Role;
use crate::outcomes::Delivery;
use crate::protocol::json::{ReportJson, TreeJson};
use crate::protocol::{Accepted, JobInfo, Response, StatusReport};
use crate::server::admin::{self, KillRefusal};

/// The longest `?wait=true` may wait (a client wanting longer asks again).
pub const MAX_WAIT_SECS: u64 = 300;
const DEFAULT_WAIT_SECS: u64 = 30;
/// The most in-flight jobs one `GET /v1/jobs` lists.
pub const MAX_LIST: usize = 10_000;
const DEFAULT_LIST: usize = 1000;

/// `POST /v1/jobs`: numbers to test, or a prime to make.
#[derive(Debug, Clone, Hash, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitRequest {
    Numbers(NumbersRequest),
    MakePrime(MakePrimeRequest),
}

/// `{"numbers": ["97", "91"]}`
#[derive(Debug, Clone, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumbersRequest {
    /// Integers in decimal (or `0x…` hex), of up to `limits.max_digits` digits (100,000 by
    /// default). One primed will not test is answered in `errors`, the others are accepted.
    #[schema(min_items = 1, max_items = 4096)]
    pub numbers: Vec<String>,
}

/// `{"make_prime": {"digits": 40}}`
#[derive(Debug, Clone, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakePrimeRequest {
    pub make_prime: MakePrime,
}

/// "Make me a prime of this many digits" (at most `limits.max_digits`).
#[derive(Debug, Clone, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakePrime {
    #[schema(minimum = 1)]
    pub digits: u32,
}

impl SubmitRequest {
    /// Which of the two forms a body is, by its keys, so that a wrong one is answered with
    /// what is wrong in it rather than "matches no form".
    fn parse(body: serde_json::Value) -> Result<SubmitRequest> {
        let form = |e: serde_json::Error| ApiError::unprocessable(format!("{e}"));
        let keys: Vec<&str> = body
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        match keys[..] {
            ["numbers"] => serde_json::from_value(body)
                .map(SubmitRequest::Numbers)
                .map_err(form),
            ["make_prime"] => serde_json::from_value(body)
                .map(SubmitRequest::MakePrime)
                .map_err(form),
            _ => Err(ApiError::unprocessable(
                "give an object with exactly one of numbers (a list of strings) or make_prime \
                 ({\"digits\": N})",
            )),
        }
    }
}

/// A job accepted and durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobJson {
    pub id: JobId,
    /// The number as primed reads it (canonical decimal), or `a 40-digit prime`.
    pub n: String,
}

/// An input primed will not test, as `primed check --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputErrorJson {
    /// Its position in `numbers`.
    pub index: usize,
    pub n: String,
    pub error: String,
}

/// The jobs made, in the order of the inputs, and the inputs refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub jobs: Vec<JobJson>,
    pub errors: Vec<InputErrorJson>,
}

/// A job still in flight: `{"id":7,"status":"pending","submitted_ms":…,"faults":0}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingJson {
    pub id: JobId,
    /// Always `pending`.
    pub status: String,
    /// When it was accepted (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_ms: Option<u64>,
    /// Crashes of a tester while it ran this job so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<u32>,
}

/// `GET /v1/jobs/{id}`: the answer, or that it is still pending.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JobAnswer {
    Done(ReportJson),
    Pending(PendingJson),
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait for the answer instead of answering `pending`.
    #[serde(default)]
    pub wait: bool,
    /// How long to wait, in seconds (default 30, at most 300); then `pending`.
    pub timeout: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// List jobs with ids above this one (the `next` of the previous page).
    pub after: Option<JobId>,
    /// Most jobs to list (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// A page of the jobs in flight, oldest first; `next` is where the next page starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobInfo>,
    pub next: Option<JobId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelledJson {
    pub id: JobId,
    pub cancelled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlarmsJson {
    pub alarms: Vec<Alarm>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KilledJson {
    pub killed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReloadedJson {
    /// What the reload changed, in a sentence.
    pub reloaded: String,
}

/// What a job-id path segment must be.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// A job id, as `POST /v1/jobs` gave it.
    pub id: JobId,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ActorPath {
    /// tester-1 … tester-N, balancer or area_server.
    pub name: String,
}

type Result<T> = std::result::Result<T, ApiError>;

/// The API's integers are JSON's int64 (as its schema says, and as most languages read JSON):
/// an id or time past that is refused rather than taken modulo something.
pub fn in_range(value: u64) -> Result<()> {
    match i64::try_from(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(ApiError::bad_request(format!(
            "{value} is out of range: the API's integers are at most {}",
            i64::MAX
        ))),
    }
}

/// Submit numbers to test, or a prime to make; answered once the jobs are durable.
#[utoipa::path(post, path = "/v1/jobs", request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A retry with the same key and body returns the same jobs (24 h)")),
    responses(
        (status = 200, description = "The jobs accepted (and inputs refused)", body = SubmitResponse),
        (status = 400, description = "Not JSON, or a bad Idempotency-Key", body = ErrorJson),
        (status = 413, description = "A body over limits.max_frame_bytes", body = ErrorJson),
        (status = 415, description = "Not application/json", body = ErrorJson),
        (status = 422, description = "Not one of the two forms, more than 4096 numbers, none primed will test, or a key reused for another body", body = ErrorJson),
        (status = 503, description = "Busy, disk full, shutting down, or the journal failed", body = ErrorJson),
    ))]
pub async fn submit(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: std::result::Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SubmitResponse>> {
    let Json(body) = body?;
    let request = SubmitRequest::parse(body)?;
    let Some(key) = headers.get("idempotency-key") else {
        return take_in(&api, request).await.map(Json);
    };
    if !idempotency::valid_key(key.as_bytes()) {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {} visible ASCII characters",
            idempotency::MAX_KEY_LEN
        )));
    }
    let key = String::from_utf8_lossy(key.as_bytes()).into_owned();
    let mut hasher = std::hash::DefaultHasher::new();
    request.hash(&mut hasher);
    let weight = match &request {
        SubmitRequest::Numbers(r) => r.numbers.iter().map(|n| n.len() + 16).sum(),
        SubmitRequest::MakePrime(_) => 16,
    };
    let answer = lock(&api.idempotency)
        .claim(&key, hasher.finish(), weight, Instant::now())
        .map_err(ApiError::unprocessable)?;
    // Concurrent retries wait here for the first; a failed first lets the next one try.
    let response = answer.get_or_try_init(|| take_in(&api, request)).await?;
    Ok(Json(response.clone()))
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared idempotency table's type.
pub type Keys = Mutex<Idempotency<SubmitResponse>>;

fn submission(api: &Api, request: SubmitRequest) -> Result<Submission> {
    let jobs = &api.shared.ctx.jobs;
    match request {
        SubmitRequest::Numbers(NumbersRequest { numbers }) if numbers.is_empty() => Err(
            ApiError::unprocessable("numbers is empty: give at least one"),
        ),
        SubmitRequest::Numbers(NumbersRequest { numbers }) => {
            jobs.submission(numbers).map_err(ApiError::unprocessable)
        }
        SubmitRequest::MakePrime(MakePrimeRequest {
            make_prime: MakePrime { digits },
        }) => Ok(jobs.make_prime(digits)),
    }
}

/// Through the intake exactly as a CLI connection's submission: admitted, journaled, and
/// answered once durable.
async fn take_in(api: &Api, request: SubmitRequest) -> Result<SubmitResponse> {
    let submission = submission(api, request)?;
    let jobs = &api.shared.ctx.jobs;
    let (out, mut answers) = mpsc::unbounded_channel();
    jobs.acknowledge(jobs.accept(submission, false), &out).await;
    let items = match answers.try_recv() {
        Ok(Delivery {
            response: Response::Accepted { items },
            ..
        }) => items,
        _ => return Err(ApiError::unavailable("the submission was not answered")),
    };
    accepted(items)
}

fn accepted(items: Vec<Accepted>) -> Result<SubmitResponse> {
    let mut response = SubmitResponse {
        jobs: Vec::new(),
        errors: Vec::new(),
    };
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Accepted::Job { id, n } => response.jobs.push(JobJson { id, n }),
            Accepted::Invalid { input, error } => response.errors.push(InputErrorJson {
                index,
                n: input,
                error,
            }),
            // Admission refuses a submission whole: busy, disk full, shutting down.
            Accepted::Refused { error, .. } => return Err(ApiError::unavailable(error)),
        }
    }
    if response.jobs.is_empty() {
        let first = response.errors.first().map_or("", |e| e.error.as_str());
        let mut error = ApiError::unprocessable(format!("no job accepted: {first}"));
        error.body.reason = serde_json::to_string(&response.errors).ok();
        return Err(error);
    }
    Ok(response)
}

/// A job's answer (as `primed result --json` prints it), or `pending`.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(JobPath, WaitQuery),
    responses(
        (status = 200, description = "The answer, or pending", body = JobAnswer),
        (status = 400, description = "Not a job id", body = ErrorJson),
        (status = 404, description = "No such job", body = ErrorJson),
        (status = 410, description = "Finished, and pruned under the retention policy", body = ErrorJson),
    ))]
pub async fn result(
    State(api): State<Arc<Api>>,
    path: std::result::Result<Path<JobPath>, axum::extract::rejection::PathRejection>,
    query: std::result::Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobAnswer>> {
    let Path(JobPath { id }) = path?;
    let Query(query) = query?;
    in_range(id)?;
    in_range(query.timeout.unwrap_or(0))?;
    let jobs = &api.shared.ctx.jobs;
    if !query.wait {
        let response = jobs.answer(id, None).await;
        return answer(id, response).map(|a| detailed(&api, a));
    }
    let limit = Duration::from_secs(
        query
            .timeout
            .unwrap_or(DEFAULT_WAIT_SECS)
            .min(MAX_WAIT_SECS),
    );
    let (out, mut answers) = mpsc::unbounded_channel();
    if let Some(response) = jobs.answer(id, Some(&out)).await {
        return answer(id, Some(response)).map(|a| detailed(&api, a));
    }
    let mut closing = api.shared.closing.clone();
    let response = tokio::select! {
        delivery = answers.recv() => delivery.map(|d| d.response),
        () = tokio::time::sleep(limit) => None,
        _ = closing.wait_for(|&closing| closing) => None,
    };
    let response = match response {
        Some(response) => response,
        // Not answered in time: stop waiting, unless the answer is already on its way.
        None if !jobs.stop_waiting(id, &out) => match answers.recv().await {
            Some(delivery) => delivery.response,
            None => Response::Pending { id },
        },
        None => Response::Pending { id },
    };
    answer(id, Some(response)).map(|a| detailed(&api, a))
}

/// The answer with the job's times and faults, from its record.
fn detailed(api: &Api, Json(mut answer): Json<JobAnswer>) -> Json<JobAnswer> {
    let id = match &answer {
        JobAnswer::Done(report) => report.id,
        JobAnswer::Pending(pending) => pending.id,
    };
    if let Ok(Some(timings)) = api.shared.ctx.jobs.timings(id) {
        match &mut answer {
            JobAnswer::Done(report) => {
                report.submitted_ms = Some(timings.submitted_ms);
                report.finished_ms = timings.finished_ms;
                report.faults = Some(timings.faults);
            }
            JobAnswer::Pending(pending) => {
                pending.submitted_ms = Some(timings.submitted_ms);
                pending.faults = Some(timings.faults);
            }
        }
    }
    Json(answer)
}

fn answer(id: JobId, response: Option<Response>) -> Result<Json<JobAnswer>> {
    match response {
        Some(Response::Done(report)) => Ok(Json(JobAnswer::Done(ReportJson::from(&report)))),
        Some(Response::Pending { id }) => Ok(Json(JobAnswer::Pending(PendingJson {
            id,
            status: "pending".to_string(),
            submitted_ms: None,
            faults: None,
        }))),
        Some(Response::Pruned { id, reason }) => Err(ApiError::pruned(id, reason)),
        Some(Response::Unknown { error, .. }) => Err(ApiError::not_found(error)),
        _ => Err(ApiError::unavailable(format!("job {id}: no answer"))),
    }
}

/// Cancel a job in flight: it is answered `cancelled`, and its tester stops it.
#[utoipa::path(delete, path = "/v1/jobs/{id}", params(JobPath),
    responses(
        (status = 200, description = "Cancelled", body = CancelledJson),
        (status = 400, description = "Not a job id", body = ErrorJson),
        (status = 404, description = "No such job", body = ErrorJson),
        (status = 409, description = "It has already finished, or this daemon is a standby", body = ErrorJson),
        (status = 410, description = "It finished long ago and was pruned", body = ErrorJson),
        (status = 503, description = "The journal failed", body = ErrorJson),
    ))]
pub async fn cancel(
    State(api): State<Arc<Api>>,
    path: std::result::Result<Path<JobPath>, axum::extract::rejection::PathRejection>,
) -> Result<Json<CancelledJson>> {
    let Path(JobPath { id }) = path?;
    in_range(id)?;
    if let Role::Standby { leader } = api.shared.coordination.role().await {
        return Err(ApiError::conflict(format!(
            "this daemon is a standby: cancel job {id} at the leading daemon ({})",
            leader.as_deref().unwrap_or("unknown right now")
        )));
    }
    match api.shared.ctx.jobs.cancel(id).await {
        Ok(()) => Ok(Json(CancelledJson {
            id,
            cancelled: true,
        })),
        Err(e) => Err(match e.why {
            CancelRefusal::NoSuchJob => ApiError::not_found(e.message),
            CancelRefusal::Finished => ApiError::conflict(e.message),
            CancelRefusal::Pruned => ApiError::new(StatusCode::GONE, e.message),
            CancelRefusal::Journal => ApiError::unavailable(e.message),
        }),
    }
}

/// The jobs in flight, a page at a time, with the tester holding each.
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs in flight", body = JobList),
        (status = 400, description = "A bad query", body = ErrorJson),
        (status = 503, description = "The journal failed", body = ErrorJson),
    ))]
pub async fn list(
    State(api): State<Arc<Api>>,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>> {
    let Query(query) = query?;
    in_range(query.after.unwrap_or(0))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST);
    let from = query.after.map_or(0, |after| after.saturating_add(1));
    let mut entries = api.shared.ctx.jobs.in_flight_from(from);
    let mut page = Vec::with_capacity(limit.min(DEFAULT_LIST));
    for entry in entries.by_ref().take(limit) {
        let entry = entry.map_err(|e| ApiError::unavailable(e.to_string()))?;
        page.push(entry.job);
    }
    let next = (page.len() == limit && entries.next().is_some())
        .then(|| page.last().map(|job| job.id))
        .flatten();
    let held = admin::holders(page.iter().map(|job| job.id).collect()).await;
    let jobs = page
        .into_iter()
        .zip(held)
        .map(|(job, tester)| JobInfo {
            id: job.id,
            n: job.task.to_string(),
            tester: tester.map(TesterId::name),
            attempts: job.attempts,
        })
        .collect();
    Ok(Json(JobList { jobs, next }))
}

/// What `primed status --json` prints: testers, queues, counts, retention, role.
#[utoipa::path(get, path = "/v1/status",
    responses((status = 200, description = "The daemon's status", body = StatusReport)))]
pub async fn status(State(api): State<Arc<Api>>) -> Result<Json<StatusReport>> {
    match admin::status(&api.shared).await {
        Response::Status(report) => Ok(Json(report)),
        _ => Err(ApiError::unavailable("no status")),
    }
}

/// Refused on a standby, which runs no tree: the leading daemon does.
async fn on_leader(api: &Api) -> Result<()> {
    match admin::standby_refusal(&api.shared).await {
        Some(Response::Failed { message }) => Err(ApiError::conflict(message)),
        _ => Ok(()),
    }
}

/// The live supervision tree, as `primed tree --json` prints it.
#[utoipa::path(get, path = "/v1/tree",
    responses(
        (status = 200, description = "The supervision tree", body = TreeJson),
        (status = 409, description = "A standby: the leading daemon runs the tree", body = ErrorJson),
    ))]
pub async fn tree(State(api): State<Arc<Api>>) -> Result<Json<TreeJson>> {
    on_leader(&api).await?;
    match admin::tree(&api.shared.ctx).await {
        Response::Tree(root) => Ok(Json(TreeJson::from(&root))),
        _ => Err(ApiError::unavailable("no tree")),
    }
}

/// The alarms active now.
#[utoipa::path(get, path = "/v1/alarms",
    responses((status = 200, description = "Active alarms", body = AlarmsJson)))]
pub async fn alarms(State(api): State<Arc<Api>>) -> Json<AlarmsJson> {
    Json(AlarmsJson {
        alarms: api.shared.ctx.alarms.active(),
    })
}

/// Kill an actor abruptly (Erlang's `exit(Pid, kill)`); its supervisor restarts it.
#[utoipa::path(post, path = "/v1/actors/{name}/kill", params(ActorPath),
    responses(
        (status = 200, description = "Killed", body = KilledJson),
        (status = 404, description = "No actor of that name", body = ErrorJson),
        (status = 409, description = "Being restarted, or a standby (the leading daemon runs the tree)", body = ErrorJson),
        (status = 503, description = "It did not stop in time", body = ErrorJson),
    ))]
pub async fn kill(
    State(api): State<Arc<Api>>,
    path: std::result::Result<Path<ActorPath>, axum::extract::rejection::PathRejection>,
) -> Result<Json<KilledJson>> {
    let Path(ActorPath { name }) = path?;
    on_leader(&api).await?;
    match admin::kill_actor(&name, api.shared.ctx.testers()).await {
        Ok(()) => Ok(Json(KilledJson { killed: name })),
        Err(KillRefusal::Unknown(message)) => Err(ApiError::not_found(message)),
        Err(KillRefusal::Restarting(message)) => Err(ApiError::conflict(message)),
        Err(KillRefusal::Stuck(message)) => Err(ApiError::unavailable(message)),
    }
}

/// Re-read the configuration and apply what can change live (as `primed reload`).
#[utoipa::path(post, path = "/v1/reload",
    responses(
        (status = 200, description = "Applied", body = ReloadedJson),
        (status = 422, description = "The configuration is refused; nothing changed", body = ErrorJson),
    ))]
pub async fn reload(State(api): State<Arc<Api>>) -> Result<Json<ReloadedJson>> {
    match api.shared.reloader.reload().await {
        Ok(changes) => Ok(Json(ReloadedJson { reloaded: changes })),
        Err(message) => Err(ApiError::unprocessable(message)),
    }
}

/// `OK` while the daemon serves.
#[utoipa::path(get, path = "/v1/_ping",
    responses((status = 200, description = "The daemon serves", body = String, content_type = "text/plain")))]
pub async fn ping() -> &'static str {
    "OK"
}
