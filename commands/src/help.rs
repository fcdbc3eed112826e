//! Help text and the README's command table, both rendered from the command table.

use crate::table::{Access, Spec, SPECS};

/// `help` (all commands, one line each) or `help <command>` (usage, details, options,
/// examples).
pub fn help(topic: Option<&str>) -> String {
    match topic.and_then(crate::table::spec) {
        Some(spec) => detailed(spec),
        None => overview(),
    }
}

fn overview() -> String {
    let mut out = String::from("Commands (operator-only ones are marked *):\n");
    for spec in SPECS {
        for form in spec.forms {
            let mark = if spec.access == Access::Operator {
                "*"
            } else {
                " "
            };
            out.push_str(&format!(
                "{mark} {} — {}\n",
                usage_brief(spec, form.keyword),
                if spec.forms.len() > 1 {
                    form.summary
                } else {
                    spec.summary
                }
            ));
        }
    }
    out.push_str("Type `help <command>` for details.");
    out
}

/// Usage without the option lists, for the overview.
fn usage_brief(spec: &Spec, keyword: Option<&str>) -> String {
    let form = spec
        .forms
        .iter()
        .find(|f| f.keyword == keyword)
        .expect("form exists");
    let mut usage = form.usage(spec.name);
    if let Some(i) = usage.find(" [") {
        if !form.options.is_empty() {
            usage.truncate(i);
            usage.push_str(" [options]");
        }
    }
    usage
}

fn detailed(spec: &Spec) -> String {
    let mut out = format!(
        "{} — {}\nUsage: {}\n",
        spec.name,
        spec.summary,
        spec.usage()
    );
    if !spec.details.is_empty() {
        out.push_str(spec.details);
        out.push('\n');
    }
    for form in spec.forms {
        for arg in form.args {
            out.push_str(&format!("  {}: {}\n", arg.name, arg.help));
        }
        for opt in form.options {
            if !out.contains(&format!("  {}=", opt.key)) {
                out.push_str(&format!(
                    "  {}={}: {}\n",
                    opt.key,
                    opt.choices.join("|"),
                    opt.help
                ));
            }
        }
    }
    if spec.access == Access::Operator {
        out.push_str("Only operators may run it.\n");
    }
    out.push_str("Examples: ");
    out.push_str(&spec.examples.join(" · "));
    out
}

/// The README's command table (Markdown), so the docs cannot drift from the parser.
pub fn markdown_table() -> String {
    let mut out = String::from("| Command | What it does | Who |\n|---|---|---|\n");
    for spec in SPECS {
        for form in spec.forms {
            let who = match spec.access {
                Access::Operator => "operators",
                Access::Anyone => "anyone",
            };
            let what = if spec.forms.len() > 1 {
                form.summary
            } else {
                spec.summary
            };
            out.push_str(&format!(
                "| `{}` | {} | {who} |\n",
                form.usage(spec.name).replace('|', "\\|"),
                what
            ));
        }
    }
    out
}
