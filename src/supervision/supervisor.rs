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

    async fn restart(&mut self, exited: usize, myself: ActorCell) -> Result<(), ActorProcessingErr> {
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
