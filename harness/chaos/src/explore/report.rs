//! The exploration's report: `explore.json` (everything), `explore.md` and a self-contained
//! `explore.html`, each listing the findings with their minimal steps, replay rate, when
//! they were first found, how much they shrank, and a failing replay's timeline.

use std::fmt::Write as _;
use std::path::Path;

use super::{Exploration, ExploreError, Finding};
use crate::report::timeline::esc;

pub fn write(dir: &Path, exploration: &Exploration) -> Result<(), ExploreError> {
    let json = serde_json::to_string_pretty(exploration).expect("an exploration serialises");
    super::write(&dir.join("explore.json"), &json)?;
    super::write(&dir.join("explore.md"), &markdown(exploration))?;
    super::write(&dir.join("explore.html"), &html(exploration))?;
    Ok(())
}

fn headline(e: &Exploration) -> String {
    format!(
        "{} plan(s) under {} against {} (seed {}{}, fault kinds {}): {} held under faults, {} held \
         with no stop or no fault, {} violating, \
         {} inconclusive, {} harness error(s); {} finding(s){}; {:.0} s, {:.1} plans per minute.",
        e.plans_run,
        e.profile,
        e.sut,
        e.seed,
        e.partition
            .as_deref()
            .map(|p| format!(", shard {p}"))
            .unwrap_or_default(),
        e.kinds.join(", "),
        e.held_runs,
        e.idle_runs,
        e.violating_runs,
        e.inconclusive_runs,
        e.error_runs,
        e.findings.len(),
        if e.not_replayed > 0 {
            format!(
                " ({} violation(s) did not replay in {} of {} and were not kept)",
                e.not_replayed,
                super::REPLAY_K,
                super::REPLAY_N
            )
        } else {
            String::new()
        },
        e.elapsed_s,
        e.plans_per_minute
    )
}

fn facts(f: &Finding) -> Vec<(&'static str, String)> {
    vec![
        ("breaks", f.invariant.id().to_owned()),
        (
            "replays",
            format!(
                "{} with exactly {}",
                f.replay_rate(),
                f.violates
                    .iter()
                    .map(|i| i.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (
            "first found",
            format!(
                "after {} plan(s), {:.0} s (plan {})",
                f.found_after_runs, f.found_after_s, f.plan_index
            ),
        ),
        (
            "shrunk",
            format!(
                "from {} elements ({} faults) to {} ({} faults), {} oracle calls of {} replays",
                f.original_size,
                f.original_faults,
                f.size,
                f.faults,
                f.shrink_calls,
                super::REPLAY_N
            ),
        ),
        ("seen again", format!("{} plan(s)", f.seen_again)),
    ]
}

pub fn markdown(e: &Exploration) -> String {
    let mut md = format!("# Exploration\n\n{}\n", headline(e));
    if e.findings.is_empty() {
        md.push_str("\nNothing found.\n");
    }
    for f in &e.findings {
        let _ = write!(md, "\n## `{}`\n\n", f.file);
        for (k, v) in facts(f) {
            let _ = writeln!(md, "- {k}: {v}");
        }
        if let Some(t) = &f.timeline {
            let _ = writeln!(md, "- a failing replay: [{t}]({t})");
        }
        let _ = write!(md, "\n```toml\n{}```\n", f.scenario);
    }
    md
}

pub fn html(e: &Exploration) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Exploration</title><style>\
         body{font:13px system-ui,sans-serif;margin:1.5em;max-width:70em}\
         pre{background:#f5f5f5;padding:.6em;overflow:auto}dt{font-weight:bold}\
         section{border-top:1px solid #ccc;margin-top:1.2em}</style></head><body><h1>Exploration</h1>",
    );
    let _ = write!(h, "<p>{}</p>", esc(&headline(e)));
    if e.findings.is_empty() {
        h.push_str("<p>Nothing found.</p>");
    }
    for f in &e.findings {
        let _ = write!(h, "<section><h2><code>{}</code></h2><dl>", esc(&f.file));
        for (k, v) in facts(f) {
            let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
        }
        if let Some(t) = &f.timeline {
            let _ = write!(
                h,
                "<dt>a failing replay</dt><dd><a href=\"{0}\">{0}</a></dd>",
                esc(t)
            );
        }
        let _ = write!(h, "</dl><pre>{}</pre></section>", esc(&f.scenario));
    }
    h.push_str("</body></html>");
    h
}
