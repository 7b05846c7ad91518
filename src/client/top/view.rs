//! How `primed top` looks: a pure function from a `TopModel` to a ratatui frame, so every pixel
//! of it can be checked on a test backend without a terminal or a daemon.

use std::collections::VecDeque;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use ratatui::Frame;

use super::model::{Link, TopModel};
use crate::protocol::{StatusReport, TesterStatus};

const HEADER_ROWS: u16 = 2;
const RATES_ROWS: u16 = 7;
const ALARMS_MIN_ROWS: u16 = 3;
const FOOTER_ROWS: u16 = 1;
/// Borders plus the column titles.
const TESTERS_CHROME: u16 = 3;

/// Left to right, a bar's last cell: an eighth more for each step.
const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
const FULL: &str = "█";

pub fn draw(frame: &mut Frame, model: &TopModel) {
    let area = frame.area();
    let testers = model.status().map_or(0, |s| s.testers.len());
    let [header, testers_area, rates, alarms, footer] =
        Layout::vertical(constraints(area.height, testers)).areas(area);
    draw_header(frame, header, model);
    draw_testers(frame, testers_area, model);
    draw_rates(frame, rates, model);
    draw_alarms(frame, alarms, model);
    let hint = Paragraph::new("q quit").style(Style::new().add_modifier(Modifier::DIM));
    frame.render_widget(hint, footer);
}

/// The testers panel takes what the fixed panels leave, so with many testers the alarms and
/// the footer stay on screen and the tester list is cut instead.
fn constraints(height: u16, testers: usize) -> [Constraint; 5] {
    let fixed = HEADER_ROWS + RATES_ROWS + ALARMS_MIN_ROWS + FOOTER_ROWS;
    let wanted = u16::try_from(testers)
        .unwrap_or(u16::MAX)
        .saturating_add(TESTERS_CHROME);
    let testers_rows = wanted.min(height.saturating_sub(fixed));
    [
        Constraint::Length(HEADER_ROWS),
        Constraint::Length(testers_rows),
        Constraint::Length(RATES_ROWS),
        Constraint::Min(ALARMS_MIN_ROWS),
        Constraint::Length(FOOTER_ROWS),
    ]
}

fn draw_header(frame: &mut Frame, area: Rect, model: &TopModel) {
    let counts = match model.status() {
        Some(status) => counts_line(status),
        None => Line::from("no status yet"),
    };
    let link = match model.link() {
        Link::Connecting => Line::styled("connecting to the daemon…", Color::Yellow),
        Link::Up => Line::styled("connected", Color::Green),
        Link::Down(reason) => Line::styled(
            format!("daemon unreachable, retrying every second: {reason}"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    frame.render_widget(Paragraph::new(vec![counts, link]), area);
}

fn counts_line(status: &StatusReport) -> Line<'static> {
    let balancer = if status.balancer.available {
        Span::styled("balancer up", Color::Green)
    } else {
        Span::styled("balancer restarting", Color::Yellow)
    };
    Line::from(vec![
        Span::raw(format!(
            "in flight {} · completed {} · restarts {} · ",
            status.in_flight, status.completed, status.restarts
        )),
        balancer,
    ])
}

fn draw_testers(frame: &mut Frame, area: Rect, model: &TopModel) {
    // Old numbers must not pass for live ones.
    let title = match model.link() {
        Link::Down(_) => " Testers (stale) ",
        _ => " Testers ",
    };
    let block = Block::new().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let testers = model.status().map_or(&[][..], |s| &s.testers[..]);
    let name_width = testers.iter().map(|t| t.name.chars().count()).max();
    let name_width = u16::try_from(name_width.unwrap_or(0).max(6) + 1).unwrap_or(u16::MAX);
    let [names, queued, load, restarts, done] = Layout::horizontal([
        Constraint::Length(name_width),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(10),
    ])
    .areas(inner);
    let column = |title: &str, cells: Vec<Line<'static>>| {
        let mut lines = vec![Line::styled(title.to_string(), Modifier::BOLD)];
        lines.extend(cells);
        Paragraph::new(lines)
    };
    let names_cells = testers.iter().map(|t| Line::from(t.name.clone())).collect();
    frame.render_widget(column("tester", names_cells), names);
    let queues: Vec<u64> = testers.iter().map(|t| t.queued).collect();
    let exact = |v: u64| v.to_string();
    let queue_cells = bar_cells(&queues, queued.width, exact);
    frame.render_widget(column("queued", queue_cells), queued);
    let loads: Vec<u64> = testers.iter().map(|t| t.load).collect();
    frame.render_widget(column("load", bar_cells(&loads, load.width, compact)), load);
    let numbers = |f: fn(&TesterStatus) -> u64| {
        testers
            .iter()
            .map(|t| Line::from(format!("{:>9}", f(t))))
            .collect()
    };
    frame.render_widget(column(" restarts", numbers(|t| t.restarts)), restarts);
    frame.render_widget(column("      done", numbers(|t| t.completed)), done);
}

/// One cell per value: the number, then a bar scaled so that the largest value fills the
/// column, since what an operator looks for is the imbalance between testers.
fn bar_cells(values: &[u64], width: u16, show: fn(u64) -> String) -> Vec<Line<'static>> {
    let max = values.iter().copied().max().unwrap_or(0);
    let digits = values.iter().map(|&v| show(v).len()).max().unwrap_or(1);
    // A space between number and bar, and one before the next column.
    let bar_width = usize::from(width).saturating_sub(digits + 2);
    values
        .iter()
        .map(|&value| {
            Line::from(vec![
                Span::raw(format!("{:>digits$} ", show(value))),
                Span::styled(bar(value, max, bar_width), Color::Cyan),
            ])
        })
        .collect()
}

/// A load (an estimate of work in the balancer's cost units) as a person reads it: three
/// significant figures and a k/M/G/T suffix (`43930958500` is `43.9G`).
pub fn compact(value: u64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 999.5 && unit + 1 < UNITS.len() {
        scaled /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => value.to_string(),
        _ if scaled < 9.995 => format!("{scaled:.2}{}", UNITS[unit]),
        _ if scaled < 99.95 => format!("{scaled:.1}{}", UNITS[unit]),
        _ => format!("{scaled:.0}{}", UNITS[unit]),
    }
}

/// A horizontal bar of `value / max` of `width` cells, to an eighth of a cell. A value above
/// zero always shows at least a sliver, so an almost idle tester is not mistaken for an idle one.
pub fn bar(value: u64, max: u64, width: usize) -> String {
    if max == 0 || value == 0 || width == 0 {
        return String::new();
    }
    let eighths = u128::from(value.min(max)) * (width as u128) * 8 / u128::from(max);
    let eighths = usize::try_from(eighths).unwrap_or(width * 8).max(1);
    let mut bar = FULL.repeat(eighths / 8);
    bar.push_str(PARTIAL[eighths % 8]);
    bar
}

fn draw_rates(frame: &mut Frame, area: Rect, model: &TopModel) {
    let [left, right] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(area);
    let throughput = match model.throughput().back() {
        Some(rate) => format!(" Throughput {rate:.1} jobs/s "),
        None => " Throughput – jobs/s ".to_string(),
    };
    sparkline(frame, left, throughput, model.throughput(), Color::Green);
    let last_minute = model.status().map_or(0, |s| s.restarts_last_minute);
    let restarts = match model.restart_rate().back() {
        Some(rate) => format!(" Restarts {rate:.2}/s · {last_minute} in the last minute "),
        None => format!(" Restarts –/s · {last_minute} in the last minute "),
    };
    sparkline(frame, right, restarts, model.restart_rate(), Color::Red);
}

/// Draws the newest samples that fit, right-aligned in time: ratatui's sparkline draws the
/// first values it is given, so the history is cut to the width first.
fn sparkline(frame: &mut Frame, area: Rect, title: String, history: &VecDeque<f64>, color: Color) {
    let block = Block::new().borders(Borders::ALL).title(title);
    let width = usize::from(block.inner(area).width);
    let skip = history.len().saturating_sub(width);
    // Sparklines take integers; hundredths keep rates below one job a second visible.
    let data: Vec<u64> = history
        .iter()
        .skip(skip)
        .map(|r| (r * 100.0).round() as u64)
        .collect();
    let widget = Sparkline::default().block(block).data(data).style(color);
    frame.render_widget(widget, area);
}

fn draw_alarms(frame: &mut Frame, area: Rect, model: &TopModel) {
    let alarms = model.alarms();
    let title = format!(" Alarms ({}) ", alarms.len());
    let lines: Vec<Line> = if alarms.is_empty() {
        vec![Line::styled("none", Modifier::DIM)]
    } else {
        alarms
            .iter()
            .map(|a| Line::styled(a.as_str(), Color::Red))
            .collect()
    };
    let block = Block::new().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::super::model::tests::{report, tester};
    use super::*;

    /// The screen as text, one string per row.
    fn render(model: &TopModel, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, model)).unwrap();
        let buffer = terminal.backend().buffer();
        buffer
            .content
            .chunks(usize::from(width))
            .map(|row| row.iter().map(|cell| cell.symbol()).collect())
            .collect()
    }

    fn row_with<'a>(screen: &'a [String], needle: &str) -> (usize, &'a String) {
        screen
            .iter()
            .enumerate()
            .find(|(_, row)| row.contains(needle))
            .unwrap_or_else(|| panic!("no row shows {needle:?}:\n{}", screen.join("\n")))
    }

    #[test]
    fn loads_read_with_three_figures_and_a_suffix() {
        assert_eq!(compact(0), "0");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_500), "1.50k");
        assert_eq!(compact(43_930_958_500), "43.9G");
        assert_eq!(compact(999_999), "1.00M");
        assert_eq!(compact(u64::MAX), "18446744T");
    }

    fn bar_cells_in(row: &str) -> usize {
        row.chars()
            .filter(|c| *c == '█' || PARTIAL.iter().any(|p| p.starts_with(*c)))
            .count()
    }

    #[test]
    fn a_longer_queue_draws_a_longer_bar() {
        let mut model = TopModel::new();
        let testers = vec![tester("tester-1", 3, 7), tester("tester-2", 10, 7)];
        model.update(report(0, 0, testers), Instant::now());
        let screen = render(&model, 100, 24);
        let (_, one) = row_with(&screen, "tester-1");
        let (_, two) = row_with(&screen, "tester-2");
        // Equal loads draw equal bars, so the difference is the queue's.
        assert!(bar_cells_in(one) > 0, "a queue of 3 shows a bar: {one}");
        assert!(bar_cells_in(two) > bar_cells_in(one), "{one}\n{two}");
        assert!(two.contains("10"), "{two}");
    }

    #[test]
    fn throughput_shows_the_rate_between_two_polls() {
        let mut model = TopModel::new();
        let t0 = Instant::now();
        model.update(report(100, 0, vec![]), t0);
        model.update(report(130, 4, vec![]), t0 + Duration::from_secs(2));
        let screen = render(&model, 100, 24).join("\n");
        assert!(screen.contains("Throughput 15.0 jobs/s"), "{screen}");
        assert!(screen.contains("Restarts 2.00/s"), "{screen}");
    }

    #[test]
    fn alarms_are_listed_in_their_panel() {
        let mut model = TopModel::new();
        model.update(report(0, 0, vec![]), Instant::now());
        let screen = render(&model, 100, 24);
        let (title, _) = row_with(&screen, "Alarms (0)");
        assert!(screen[title + 1].contains("none"), "{}", screen[title + 1]);

        model.set_alarms(vec!["tester-3 restarted 12 times in 10s".into()]);
        let screen = render(&model, 100, 24);
        let (title, _) = row_with(&screen, "Alarms (1)");
        assert!(screen[title + 1].contains("tester-3 restarted 12 times in 10s"));
        assert!(!screen.join("\n").contains("none"));
    }

    #[test]
    fn an_unreachable_daemon_is_said_and_old_numbers_marked_stale() {
        let mut model = TopModel::new();
        model.update(report(0, 0, vec![tester("tester-1", 1, 1)]), Instant::now());
        assert!(!render(&model, 100, 24).join("\n").contains("unreachable"));
        model.disconnected("connection refused".into());
        let screen = render(&model, 100, 24).join("\n");
        assert!(screen.contains("daemon unreachable"), "{screen}");
        assert!(screen.contains("connection refused"), "{screen}");
        assert!(screen.contains("Testers (stale)"), "{screen}");
    }

    #[test]
    fn many_testers_leave_the_alarms_and_footer_on_screen() {
        let mut model = TopModel::new();
        let testers = (1..=40)
            .map(|i| tester(&format!("tester-{i}"), i, i))
            .collect();
        model.update(report(0, 0, testers), Instant::now());
        let screen = render(&model, 80, 24);
        assert!(screen[23].contains("q quit"), "{}", screen[23]);
        row_with(&screen, "Alarms (0)");
        assert!(!screen.join("\n").contains("tester-40"));
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10, 10, 8), "█".repeat(8));
        assert_eq!(bar(5, 10, 8), "█".repeat(4));
        assert_eq!(bar(8, 16, 1), "▌");
        assert_eq!(bar(11, 16, 2), "█▍", "11/16 of 16 eighths is 11");
        assert_eq!(bar(1, 1_000_000, 8), "▏", "a busy tester never looks idle");
        assert_eq!(bar(0, 10, 8), "");
        assert_eq!(bar(0, 0, 8), "");
        assert_eq!(bar(u64::MAX, u64::MAX, 3), "███");
    }
}
