//! The generic supervisor actor. It starts its children in order, and when one exits it applies
//! its [`Strategy`] within its restart [`Intensity`], after a [`Backoff`] delay for a child that
//! keeps exiting; past the intensity it stops its children and fails, so that its own
//! supervisor sees the failure (escalation, as in OTP).
//!
//! A child may blame its exit on its input (a poison job): such a restart is immediate and does
//! not count towards the intensity, so a burst of bad input cannot take the tree down, while a
//! child that cannot run at all still escalates.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tracing::{info, warn};

use super::{Backoff, BackoffPolicy, Intensity, RestartLog, Strategy};
use crate::events::{Event, EventKind, Events};
use crate::stats::Stats;
use crate::BoxFuture;

/// How long a supervisor waits for a child to stop before moving on.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How a child ended, as its supervisor saw it.
#[derive(Debug, Clone, Copy)]
pub struct ChildExit<'a> {
    pub reason: &'a str,
    /// It panicked or returned an error (rather than being stopped or killed).
    pub failed: bool,
}

/// Who is to blame for a child's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The child itself: the restart counts towards the intensity and backs off.
    Child,
    /// The input it was working on: restarted at once, not counted.
    Input,
}

/// How to start one child. Specs are cloned into every restart, so they hold only shared handles.
pub trait ChildSpec: Send + Sync + 'static {
    fn name(&self) -> String;
    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>>;

    fn is_supervisor(&self) -> bool {
        false
    }

    /// Called when the child has exited, before any restart; says who is to blame.
    fn exited(&self, _exit: ChildExit<'_>) -> Blame {
        Blame::Child
    }
}

/// Spawns a named child linked to `supervisor`. A killed predecessor may still hold the name
/// for a moment (a kill reaches grandchildren asynchronously), so it is waited out first.
pub async fn spawn_named<A: Actor>(
    name: String,
    actor: A,
    args: A::Arguments,
    supervisor: ActorCell,
) -> Result<ActorCell, SpawnErr> {
    if let Some(previous) = crate::actors::cell(&name) {
        let _ = previous.kill_and_wait(Some(STOP_TIMEOUT)).await;
    }
    let (actor_ref, _) = A::spawn_linked(Some(name), actor, args, supervisor).await?;
    Ok(actor_ref.get_cell())
}

/// A supervisor's child specs, shared by every incarnation of it: a change (a pool resized on
/// reload) survives the supervisor's own restart. [`SupervisorMsg::Reconcile`] makes a running
/// supervisor match it.
#[derive(Clone)]
pub struct Children(Arc<Mutex<Vec<Arc<dyn ChildSpec>>>>);

impl Children {
    pub fn new(children: Vec<Arc<dyn ChildSpec>>) -> Children {
        Children(Arc::new(Mutex::new(children)))
    }

    pub fn snapshot(&self) -> Vec<Arc<dyn ChildSpec>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, children: Vec<Arc<dyn ChildSpec>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = children;
    }
}

/// What a supervisor reports of itself for `primed tree`.
#[derive(Debug, Clone)]
pub struct SupervisorView {
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub children: Vec<ChildView>,
}

#[derive(Debug, Clone)]
pub struct ChildView {
    pub name: String,
    pub supervisor: bool,
    /// False while it is being restarted (or waits out a backoff delay).
    pub running: bool,
}

#[derive(Clone)]
pub struct SupervisorSpec {
    pub name: String,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: BackoffPolicy,
    pub children: Children,
    pub stats: Arc<Stats>,
    pub events: Arc<Events>,
}

impl ChildSpec for SupervisorSpec {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn is_supervisor(&self) -> bool {
        true
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
        let spec = self.clone();
        Box::pin(async move { spawn_named(spec.name.clone(), Supervisor, spec, supervisor).await })
    }
}

pub struct Supervisor;

/// The restart messages a supervisor sends itself carry the generation of child `i` they were
/// sent for: if the child has been started, stopped or removed since, the message is stale and
/// ignored. Generations come from one counter per supervisor, so they are never reused.
pub enum SupervisorMsg {
    /// Start the children that child `i`'s restart covers (sent after a backoff delay).
    Restart(usize, u64),
    /// Child `i` failed to start; the reason says why.
    StartFailed(usize, u64, String),
    Describe(RpcReplyPort<SupervisorView>),
    /// Stop and drop the children no longer in the shared specs, start the new ones.
    Reconcile(RpcReplyPort<()>),
}

/// One supervised child, as OTP's `#child{}` record: how to start it, the actor running now
/// (none while it is being restarted), the generation of its last change, and its backoff.
struct Child {
    spec: Arc<dyn ChildSpec>,
    cell: Option<ActorCell>,
    /// Bumped whenever the child is started, stopped or seen to exit.
    generation: u64,
    backoff: Backoff,
}

impl Child {
    fn new(spec: Arc<dyn ChildSpec>) -> Child {
        Child {
            spec,
            cell: None,
            generation: 0,
            backoff: Backoff::default(),
        }
    }

    fn name(&self) -> String {
        self.spec.name()
    }
}

pub struct SupervisorState {
    spec: SupervisorSpec,
    /// The children below, in start order (made from a snapshot of `spec.children`).
    children: Vec<Child>,
    next_generation: u64,
    log: RestartLog,
}

impl SupervisorState {
    fn index_of(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|child| child.cell.as_ref().is_some_and(|c| c.get_id() == id))
    }

    fn child_name(&self, i: usize) -> String {
        self.children[i].name()
    }

    fn bump(&mut self, i: usize) {
        self.next_generation += 1;
        self.children[i].generation = self.next_generation;
    }

    fn describe(&self) -> SupervisorView {
        SupervisorView {
            strategy: self.spec.strategy,
            intensity: self.spec.intensity,
            children: self
                .children
                .iter()
                .map(|child| ChildView {
                    name: child.name(),
                    supervisor: child.spec.is_supervisor(),
                    running: child.cell.is_some(),
                })
                .collect(),
        }
    }

    /// Makes the children match the shared specs: stops and forgets those no longer there
    /// (last first; each is told it exited, so it can settle its affairs), then appends the
    /// new ones and starts each, a failure to start being handled for that child alone.
    async fn reconcile(&mut self, myself: ActorCell) {
        let wanted = self.spec.children.snapshot();
        for i in (0..self.children.len()).rev() {
            let name = self.child_name(i);
            if wanted.iter().any(|spec| spec.name() == name) {
                continue;
            }
            self.stop_children(i..i + 1).await;
            let removed = ChildExit {
                reason: "removed from its supervisor",
                failed: false,
            };
            self.children.remove(i).spec.exited(removed);
            info!(supervisor = %self.spec.name, actor = %name, event = "child_removed",
                  "child stopped and removed");
        }
        let first_new = self.children.len();
        for spec in wanted {
            if !self.children.iter().any(|c| c.name() == spec.name()) {
                self.children.push(Child::new(spec));
                self.bump(self.children.len() - 1);
            }
        }
        for i in first_new..self.children.len() {
            self.start_children(i..i + 1, myself.clone()).await;
        }
    }

    fn is_current(&self, i: usize, generation: u64) -> bool {
        self.children
            .get(i)
            .is_some_and(|child| child.generation == generation && child.cell.is_none())
    }

    fn event(&self, kind: EventKind, i: usize) -> Event {
        Event::new(kind, self.child_name(i)).supervisor(&self.spec.name)
    }

    async fn start_child(&mut self, i: usize, myself: ActorCell) -> Result<(), SpawnErr> {
        let name = self.child_name(i);
        let cell = self.children[i].spec.start(myself).await?;
        self.children[i].backoff.started(Instant::now());
        let restarts = self.spec.stats.record_start(&name);
        let supervisor = self.spec.name.as_str();
        if restarts == 0 {
            info!(supervisor, actor = %name, event = "start", "child started");
        } else {
            info!(supervisor, actor = %name, restarts, event = "restart", "child restarted");
            self.spec
                .events
                .record(self.event(EventKind::Restart, i).count(restarts));
        }
        self.children[i].cell = Some(cell);
        self.bump(i);
        Ok(())
    }

    /// Starts the not-running children of `range` in order; a failure is handled as an exit.
    async fn start_children(&mut self, range: std::ops::Range<usize>, myself: ActorCell) {
        for i in range {
            if self.children[i].cell.is_some() {
                continue;
            }
            if let Err(e) = self.start_child(i, myself.clone()).await {
                let reason = e.to_string();
                warn!(supervisor = %self.spec.name, actor = %self.child_name(i), reason = %reason,
                      event = "start_failed", "child failed to start");
                self.spec
                    .events
                    .record(self.event(EventKind::StartFailed, i).reason(&reason));
                let retry = SupervisorMsg::StartFailed(i, self.children[i].generation, reason);
                let _ = ActorRef::<SupervisorMsg>::from(myself).send_message(retry);
                return;
            }
        }
    }

    /// Stops children `range`, last started first, as OTP does.
    async fn stop_children(&mut self, range: std::ops::Range<usize>) {
        for i in range.rev() {
            // Whatever was pending for the child (a delayed restart) is void now.
            self.bump(i);
            if let Some(cell) = self.children[i].cell.take() {
                let _ = cell.kill_and_wait(Some(STOP_TIMEOUT)).await;
            }
        }
    }

    /// Child `i` is gone: restart what the strategy says, now or after its backoff delay, or
    /// give up if the intensity is exceeded.
    async fn child_down(
        &mut self,
        i: usize,
        reason: &str,
        blame: Blame,
        myself: ActorCell,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        let delay = match blame {
            Blame::Input => Duration::ZERO,
            Blame::Child if !self.log.record(now) => return Err(self.give_up(i, reason).await),
            Blame::Child => self.children[i].backoff.next_delay(&self.spec.backoff, now),
        };
        let affected = self.spec.strategy.affected(i, self.children.len());
        self.stop_children(affected.clone()).await;
        if delay.is_zero() {
            self.start_children(affected, myself).await;
            return Ok(());
        }
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        info!(supervisor = %self.spec.name, actor = %self.child_name(i), delay_ms,
              event = "backoff", "restart delayed");
        self.spec
            .events
            .record(self.event(EventKind::Backoff, i).delay(delay));
        let generation = self.children[i].generation;
        ActorRef::<SupervisorMsg>::from(myself)
            .send_after(delay, move || SupervisorMsg::Restart(i, generation));
        Ok(())
    }

    async fn give_up(&mut self, exited: usize, reason: &str) -> ActorProcessingErr {
        let Intensity {
            max_restarts,
            period,
        } = self.log.intensity();
        let actor = self.child_name(exited);
        let message = format!(
            "{}: more than {max_restarts} restarts within {}s; last: {actor}: {reason}",
            self.spec.name,
            period.as_secs_f64()
        );
        warn!(supervisor = %self.spec.name, actor = %actor, reason = %reason, max_restarts,
              period_secs = period.as_secs_f64(), event = "escalate",
              "restart intensity exceeded; stopping children and escalating");
        self.spec.events.record(
            Event::new(EventKind::Escalate, &self.spec.name)
                .reason(&message)
                .count(u64::from(max_restarts)),
        );
        self.spec.events.set_escalation(&message);
        self.stop_children(0..self.children.len()).await;
        message.into()
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        spec: SupervisorSpec,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            log: RestartLog::new(spec.intensity),
            next_generation: 0,
            children: spec
                .children
                .snapshot()
                .into_iter()
                .map(Child::new)
                .collect(),
            spec,
        };
        for i in 0..state.children.len() {
            if let Err(e) = state.start_child(i, myself.get_cell()).await {
                state.stop_children(0..i).await;
                return Err(format!("child {} failed to start: {e}", state.child_name(i)).into());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for cell in state
            .children
            .iter_mut()
            .rev()
            .filter_map(|c| c.cell.take())
        {
            let _ = cell.stop_and_wait(None, Some(STOP_TIMEOUT)).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Restart(i, generation) if state.is_current(i, generation) => {
                let affected = state.spec.strategy.affected(i, state.children.len());
                state.start_children(affected, myself.get_cell()).await;
                Ok(())
            }
            SupervisorMsg::StartFailed(i, generation, reason)
                if state.is_current(i, generation) =>
            {
                state
                    .child_down(i, &reason, Blame::Child, myself.get_cell())
                    .await
            }
            SupervisorMsg::Restart(..) | SupervisorMsg::StartFailed(..) => Ok(()),
            SupervisorMsg::Describe(reply) => {
                let _ = reply.send(state.describe());
                Ok(())
            }
            SupervisorMsg::Reconcile(reply) => {
                state.reconcile(myself.get_cell()).await;
                let _ = reply.send(());
                Ok(())
            }
        }
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (who, reason, failed) = match event {
            SupervisionEvent::ActorTerminated(who, _, reason) => {
                (who, reason.unwrap_or_else(|| "normal".into()), false)
            }
            SupervisionEvent::ActorFailed(who, err) => (who, err.to_string(), true),
            _ => return Ok(()),
        };
        // Children we stopped ourselves were already forgotten: their exit is no news.
        let Some(i) = state.index_of(who.get_id()) else {
            return Ok(());
        };
        state.children[i].cell = None;
        state.bump(i);
        let exit = ChildExit {
            reason: &reason,
            failed,
        };
        let blame = state.children[i].spec.exited(exit);
        let blame_name = match blame {
            Blame::Child => "child",
            Blame::Input => "input",
        };
        warn!(supervisor = %state.spec.name, actor = %state.child_name(i), reason = %reason,
              strategy = state.spec.strategy.name(), blame = blame_name, event = "crash",
              "child exited");
        state
            .spec
            .events
            .record(state.event(EventKind::Crash, i).reason(&reason));
        state.child_down(i, &reason, blame, myself.get_cell()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::rpc::CallResult;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::mpsc;

    struct Worker;

    impl Actor for Worker {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A child that fails to start `failures` times, then reports each start on `started`.
    struct TestChild {
        name: String,
        failures: Arc<AtomicU32>,
        started: mpsc::UnboundedSender<(String, ActorId)>,
        blame: Blame,
    }

    impl ChildSpec for TestChild {
        fn name(&self) -> String {
            self.name.clone()
        }

        fn exited(&self, _exit: ChildExit<'_>) -> Blame {
            self.blame
        }

        fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
                .is_ok();
            let (name, started) = (self.name.clone(), self.started.clone());
            Box::pin(async move {
                if failing {
                    return Err(SpawnErr::StartupFailed("injected start failure".into()));
                }
                let cell = spawn_named(name.clone(), Worker, (), supervisor).await?;
                let _ = started.send((name, cell.get_id()));
                Ok(cell)
            })
        }
    }

    struct Tree {
        supervisor: ActorRef<SupervisorMsg>,
        started: mpsc::UnboundedReceiver<(String, ActorId)>,
        /// Per child: how many of its next starts fail.
        failures: Vec<Arc<AtomicU32>>,
    }

    /// How test children behave beyond their start failures.
    struct Behaviour {
        backoff: BackoffPolicy,
        blame: Blame,
    }

    const PLAIN: Behaviour = Behaviour {
        backoff: BackoffPolicy::NONE,
        blame: Blame::Child,
    };

    impl Tree {
        async fn start(
            prefix: &str,
            strategy: Strategy,
            max_restarts: u32,
            children: &[(&str, u32)],
        ) -> (Tree, Vec<ActorId>) {
            Tree::start_with(prefix, strategy, max_restarts, children, PLAIN).await
        }

        async fn start_with(
            prefix: &str,
            strategy: Strategy,
            max_restarts: u32,
            children: &[(&str, u32)],
            behaviour: Behaviour,
        ) -> (Tree, Vec<ActorId>) {
            let (tx, rx) = mpsc::unbounded_channel();
            let failures: Vec<_> = children
                .iter()
                .map(|&(_, f)| Arc::new(AtomicU32::new(f)))
                .collect();
            let children = children
                .iter()
                .zip(&failures)
                .map(|(&(name, _), failures)| {
                    Arc::new(TestChild {
                        name: format!("{prefix}-{name}"),
                        failures: Arc::clone(failures),
                        started: tx.clone(),
                        blame: behaviour.blame,
                    }) as Arc<dyn ChildSpec>
                })
                .collect::<Vec<_>>();
            let spec = SupervisorSpec {
                name: format!("{prefix}-sup"),
                strategy,
                intensity: Intensity {
                    max_restarts,
                    period: Duration::from_secs(60),
                },
                backoff: behaviour.backoff,
                children: Children::new(children),
                stats: Arc::new(Stats::default()),
                events: Events::new(None),
            };
            let (supervisor, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
            let mut tree = Tree {
                supervisor,
                started: rx,
                failures,
            };
            // Spawning returns after pre_start, which started every child.
            let mut ids = Vec::new();
            while let Ok((_, id)) = tree.started.try_recv() {
                ids.push(id);
            }
            (tree, ids)
        }

        async fn next_start(&mut self) -> (String, ActorId) {
            tokio::time::timeout(Duration::from_secs(10), self.started.recv())
                .await
                .expect("a child start")
                .expect("channel open")
        }
    }

    fn kill(name: &str) {
        crate::actors::cell(name).expect("child running").kill();
    }

    #[tokio::test]
    async fn one_for_one_restarts_only_the_child_that_exited() {
        let (mut tree, ids) =
            Tree::start("o41", Strategy::OneForOne, 5, &[("a", 0), ("b", 0)]).await;
        kill("o41-a");
        let (name, id) = tree.next_start().await;
        assert_eq!(name, "o41-a");
        assert_ne!(id, ids[0]);
        let b = crate::actors::cell("o41-b").unwrap();
        assert_eq!(b.get_id(), ids[1], "b was left alone");
        tree.supervisor.stop(None);
    }

    #[tokio::test]
    async fn rest_for_one_restarts_the_child_and_those_after_it() {
        let children = [("a", 0), ("b", 0), ("c", 0)];
        let (mut tree, ids) = Tree::start("r41", Strategy::RestForOne, 5, &children).await;
        kill("r41-b");
        assert_eq!(tree.next_start().await.0, "r41-b");
        assert_eq!(tree.next_start().await.0, "r41-c");
        let a = crate::actors::cell("r41-a").unwrap();
        assert_eq!(a.get_id(), ids[0], "a started before b and was left alone");
        tree.supervisor.stop(None);
    }

    #[tokio::test]
    async fn a_child_that_fails_to_restart_is_retried_within_the_intensity() {
        let (mut tree, _) = Tree::start("sf", Strategy::OneForOne, 5, &[("a", 0)]).await;
        tree.failures[0].store(2, Ordering::SeqCst);
        kill("sf-a");
        assert_eq!(tree.next_start().await.0, "sf-a", "third attempt succeeds");
        assert_eq!(
            tree.failures[0].load(Ordering::SeqCst),
            0,
            "both failures were retried"
        );
        tree.supervisor.stop(None);
    }

    #[tokio::test]
    async fn exceeding_the_restart_intensity_stops_the_children_and_escalates() {
        let (mut tree, _) = Tree::start("ri", Strategy::OneForOne, 2, &[("a", 0)]).await;
        for _ in 0..2 {
            kill("ri-a");
            tree.next_start().await;
        }
        kill("ri-a");
        tree.supervisor
            .get_cell()
            .wait(Some(Duration::from_secs(10)))
            .await
            .expect("the supervisor gives up");
        assert!(crate::actors::cell("ri-a").is_none());
    }

    #[tokio::test]
    async fn exits_blamed_on_input_restart_at_once_and_never_exhaust_the_intensity() {
        let behaviour = Behaviour {
            backoff: BackoffPolicy {
                initial: Duration::from_secs(3600),
                max: Duration::from_secs(3600),
                reset_after: Duration::from_secs(3600),
            },
            blame: Blame::Input,
        };
        let (mut tree, _) =
            Tree::start_with("bi", Strategy::OneForOne, 1, &[("a", 0)], behaviour).await;
        for _ in 0..5 {
            kill("bi-a");
            assert_eq!(
                tree.next_start().await.0,
                "bi-a",
                "no backoff, no escalation"
            );
        }
        tree.supervisor.stop(None);
    }

    #[tokio::test]
    async fn a_child_that_keeps_exiting_is_restarted_after_a_growing_delay() {
        let initial = Duration::from_millis(200);
        let behaviour = Behaviour {
            backoff: BackoffPolicy {
                initial,
                max: Duration::from_secs(5),
                reset_after: Duration::from_secs(60),
            },
            blame: Blame::Child,
        };
        let (mut tree, _) =
            Tree::start_with("bo", Strategy::OneForOne, 5, &[("a", 0)], behaviour).await;
        kill("bo-a");
        tree.next_start().await;
        let second_exit = Instant::now();
        kill("bo-a");
        tree.next_start().await;
        // A timer cannot fire early: the delay is a lower bound, whatever the machine's load.
        assert!(
            second_exit.elapsed() >= initial,
            "{:?}",
            second_exit.elapsed()
        );
        tree.supervisor.stop(None);
    }

    #[tokio::test]
    async fn a_child_that_cannot_start_at_all_makes_the_supervisor_fail_to_start() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let spec = SupervisorSpec {
            name: "nostart-sup".into(),
            strategy: Strategy::OneForOne,
            intensity: Intensity {
                max_restarts: 3,
                period: Duration::from_secs(60),
            },
            children: Children::new(vec![Arc::new(TestChild {
                name: "nostart-a".into(),
                failures: Arc::new(AtomicU32::new(1)),
                started: tx,
                blame: Blame::Child,
            })]),
            backoff: BackoffPolicy::NONE,
            stats: Arc::new(Stats::default()),
            events: Events::new(None),
        };
        let Err(err) = Actor::spawn(None, Supervisor, spec).await else {
            panic!("the supervisor started without its child");
        };
        assert!(
            err.to_string().contains("nostart-a failed to start"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reconcile_stops_removed_children_and_starts_new_ones() {
        let (tx, mut started) = mpsc::unbounded_channel();
        let child = |name: &str| {
            Arc::new(TestChild {
                name: name.to_string(),
                failures: Arc::new(AtomicU32::new(0)),
                started: tx.clone(),
                blame: Blame::Child,
            }) as Arc<dyn ChildSpec>
        };
        let (a, b, d) = (child("rec-a"), child("rec-b"), child("rec-d"));
        // rec-c fails its first start: rec-d must start all the same.
        let c = Arc::new(TestChild {
            name: "rec-c".to_string(),
            failures: Arc::new(AtomicU32::new(1)),
            started: tx.clone(),
            blame: Blame::Child,
        }) as Arc<dyn ChildSpec>;
        let children = Children::new(vec![Arc::clone(&a), b]);
        let spec = SupervisorSpec {
            name: "rec-sup".into(),
            strategy: Strategy::OneForOne,
            intensity: Intensity {
                max_restarts: 3,
                period: Duration::from_secs(60),
            },
            backoff: BackoffPolicy::NONE,
            children: children.clone(),
            stats: Arc::new(Stats::default()),
            events: Events::new(None),
        };
        let (supervisor, _) = Actor::spawn(None, Supervisor, spec).await.unwrap();
        let first: Vec<String> = vec![
            started.recv().await.unwrap().0,
            started.recv().await.unwrap().0,
        ];
        assert_eq!(first, ["rec-a", "rec-b"]);

        children.set(vec![a, c, d]);
        supervisor
            .call(SupervisorMsg::Reconcile, None)
            .await
            .unwrap();
        let mut next = Vec::new();
        for _ in 0..2 {
            let start = tokio::time::timeout(Duration::from_secs(10), started.recv()).await;
            next.push(start.expect("both new children start").unwrap().0);
        }
        next.sort();
        assert_eq!(next, ["rec-c", "rec-d"]);
        assert!(started.try_recv().is_err(), "rec-a kept running");
        assert!(crate::actors::cell("rec-b").is_none());
        let view = match supervisor
            .call(SupervisorMsg::Describe, None)
            .await
            .unwrap()
        {
            CallResult::Success(view) => view,
            other => panic!("{other:?}"),
        };
        let names: Vec<(String, bool)> = view
            .children
            .iter()
            .map(|c| (c.name.clone(), c.running))
            .collect();
        assert_eq!(
            names,
            [
                ("rec-a".into(), true),
                ("rec-c".into(), true),
                ("rec-d".into(), true)
            ]
        );
        supervisor.stop(None);
    }
}
