//! The generic supervisor actor. It starts its children in order, and when one exits it applies
//! its [`Strategy`] within its restart [`Intensity`]; past the intensity it stops its children
//! and fails, so that its own supervisor sees the failure (escalation, as in OTP).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tracing::{error, info, warn};

use super::{Intensity, RestartLog, Strategy};
use crate::stats::Stats;
use crate::BoxFuture;

/// How long a supervisor waits for a child to stop before moving on.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start one child. Specs are cloned into every restart, so they hold only shared handles.
pub trait ChildSpec: Send + Sync + 'static {
    fn name(&self) -> String;
    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>>;
}

/// Spawns a named child linked to `supervisor`. A killed predecessor may still hold the name
/// for a moment (a kill reaches grandchildren asynchronously), so it is waited out first.
pub async fn spawn_named<A: Actor>(
    name: String,
    actor: A,
    args: A::Arguments,
    supervisor: ActorCell,
) -> Result<ActorCell, SpawnErr> {
    if let Some(previous) = ractor::registry::where_is(name.clone()) {
        let _ = previous.kill_and_wait(Some(STOP_TIMEOUT)).await;
    }
    let (actor_ref, _) = A::spawn_linked(Some(name), actor, args, supervisor).await?;
    Ok(actor_ref.get_cell())
}

#[derive(Clone)]
pub struct SupervisorSpec {
    pub name: String,
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub children: Vec<Arc<dyn ChildSpec>>,
    pub stats: Arc<Stats>,
}

impl ChildSpec for SupervisorSpec {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(&self, supervisor: ActorCell) -> BoxFuture<Result<ActorCell, SpawnErr>> {
        let spec = self.clone();
        Box::pin(async move { spawn_named(spec.name.clone(), Supervisor, spec, supervisor).await })
    }
}

pub struct Supervisor;

pub enum SupervisorMsg {
    /// Try again to start child `i` (and, under rest_for_one, those after it).
    Restart(usize),
}

pub struct SupervisorState {
    spec: SupervisorSpec,
    log: RestartLog,
    cells: Vec<Option<ActorCell>>,
}

impl SupervisorState {
    fn index_of(&self, id: ActorId) -> Option<usize> {
        self.cells
            .iter()
            .position(|cell| cell.as_ref().is_some_and(|c| c.get_id() == id))
    }

    fn child_name(&self, i: usize) -> String {
        self.spec.children[i].name()
    }

    async fn start_child(&mut self, i: usize, myself: ActorCell) -> Result<(), SpawnErr> {
        let name = self.child_name(i);
        let cell = self.spec.children[i].start(myself).await?;
        let restarts = self.spec.stats.record_start(&name);
        let supervisor = self.spec.name.as_str();
        if restarts == 0 {
            info!(supervisor, actor = %name, event = "start", "child started");
        } else {
            info!(supervisor, actor = %name, restarts, event = "restart", "child restarted");
        }
        self.cells[i] = Some(cell);
        Ok(())
    }

    /// Stops children `range`, last started first, as OTP does.
    async fn stop_children(&mut self, range: std::ops::Range<usize>) {
        for i in range.rev() {
            if let Some(cell) = self.cells[i].take() {
                let _ = cell.kill_and_wait(Some(STOP_TIMEOUT)).await;
            }
        }
    }

    async fn restart(
        &mut self,
        exited: usize,
        myself: ActorCell,
    ) -> Result<(), ActorProcessingErr> {
        if !self.log.record(Instant::now()) {
            return Err(self.give_up(exited).await);
        }
        let affected = self.spec.strategy.affected(exited, self.cells.len());
        self.stop_children(affected.clone()).await;
        for i in affected {
            if let Err(e) = self.start_child(i, myself.clone()).await {
                warn!(supervisor = %self.spec.name, actor = %self.child_name(i), reason = %e,
                      event = "start_failed", "child failed to start");
                ActorRef::<SupervisorMsg>::from(myself).send_message(SupervisorMsg::Restart(i))?;
                break;
            }
        }
        Ok(())
    }

    async fn give_up(&mut self, exited: usize) -> ActorProcessingErr {
        let Intensity {
            max_restarts,
            period,
        } = self.log.intensity();
        let actor = self.child_name(exited);
        error!(supervisor = %self.spec.name, actor = %actor, max_restarts,
               period_secs = period.as_secs_f64(), event = "escalate",
               "restart intensity exceeded; stopping children and escalating");
        self.stop_children(0..self.cells.len()).await;
        format!(
            "supervisor {}: more than {max_restarts} restarts within {period:?} (last: {actor})",
            self.spec.name
        )
        .into()
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
            cells: vec![None; spec.children.len()],
            spec,
        };
        for i in 0..state.cells.len() {
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
        for cell in state.cells.iter_mut().rev().filter_map(Option::take) {
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
            SupervisorMsg::Restart(i) if state.cells.get(i).is_some_and(Option::is_none) => {
                state.restart(i, myself.get_cell()).await
            }
            SupervisorMsg::Restart(_) => Ok(()),
        }
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (who, reason) = match event {
            SupervisionEvent::ActorTerminated(who, _, reason) => {
                (who, reason.unwrap_or_else(|| "normal".into()))
            }
            SupervisionEvent::ActorFailed(who, err) => (who, err.to_string()),
            _ => return Ok(()),
        };
        // Children we stopped ourselves were already forgotten: their exit is no news.
        let Some(i) = state.index_of(who.get_id()) else {
            return Ok(());
        };
        state.cells[i] = None;
        warn!(supervisor = %state.spec.name, actor = %state.child_name(i), reason = %reason,
              strategy = state.spec.strategy.name(), event = "crash", "child exited");
        state.restart(i, myself.get_cell()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    impl ChildSpec for TestChild {
        fn name(&self) -> String {
            self.name.clone()
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

    impl Tree {
        async fn start(
            prefix: &str,
            strategy: Strategy,
            max_restarts: u32,
            children: &[(&str, u32)],
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
                    }) as Arc<dyn ChildSpec>
                })
                .collect();
            let spec = SupervisorSpec {
                name: format!("{prefix}-sup"),
                strategy,
                intensity: Intensity {
                    max_restarts,
                    period: Duration::from_secs(60),
                },
                children,
                stats: Arc::new(Stats::default()),
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
        ractor::registry::where_is(name)
            .expect("child running")
            .kill();
    }

    #[tokio::test]
    async fn one_for_one_restarts_only_the_child_that_exited() {
        let (mut tree, ids) =
            Tree::start("o41", Strategy::OneForOne, 5, &[("a", 0), ("b", 0)]).await;
        kill("o41-a");
        let (name, id) = tree.next_start().await;
        assert_eq!(name, "o41-a");
        assert_ne!(id, ids[0]);
        let b = ractor::registry::where_is("o41-b").unwrap();
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
        let a = ractor::registry::where_is("r41-a").unwrap();
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
        assert!(ractor::registry::where_is("ri-a").is_none());
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
            children: vec![Arc::new(TestChild {
                name: "nostart-a".into(),
                failures: Arc::new(AtomicU32::new(1)),
                started: tx,
            })],
            stats: Arc::new(Stats::default()),
        };
        let Err(err) = Actor::spawn(None, Supervisor, spec).await else {
            panic!("the supervisor started without its child");
        };
        assert!(
            err.to_string().contains("nostart-a failed to start"),
            "{err}"
        );
    }
}
