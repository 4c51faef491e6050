//! How assignment callbacks are answered: `{}` (defer, the default), or an instruction set
//! globally, per workflow or per task queue from the settings page.
//!
//! The rules live in the `assignment_instructions` table; the webhook hot path reads an
//! in-memory copy (one `RwLock` read and two map lookups), which is replaced whole after every
//! change, so no restart is needed and no query runs per callback.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use sqlx::SqlitePool;

use crate::storage::settings::{self, InstructionRule};
use taskrouter_protocol::instruction::{check_assignment_answer, Severity};

/// The answer that defers the decision (accept or reject later through the REST API).
pub const DEFER: &str = "{}";

/// The rules in force, by precedence: task queue, then workflow, then global.
#[derive(Debug, Default)]
struct RuleTable {
    global: Option<String>,
    by_queue: HashMap<String, String>,
    by_workflow: HashMap<String, String>,
}

/// The cached rules, shared by the webhook handlers and the settings page.
#[derive(Clone, Default)]
pub struct AssignmentInstructions {
    table: Arc<RwLock<Arc<RuleTable>>>,
}

impl AssignmentInstructions {
    /// Loads the stored rules.
    ///
    /// # Errors
    /// Any database error.
    pub async fn load(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let instructions = Self::default();
        instructions.refresh(pool).await?;
        Ok(instructions)
    }

    /// Re-reads the stored rules (after a change).
    ///
    /// # Errors
    /// Any database error; the previous rules stay in force.
    pub async fn refresh(&self, pool: &SqlitePool) -> Result<(), sqlx::Error> {
        let mut table = RuleTable::default();
        for rule in settings::instruction_rules(pool).await? {
            match rule.scope.as_str() {
                "global" => table.global = Some(rule.answer),
                "queue" => {
                    table.by_queue.insert(rule.target, rule.answer);
                }
                "workflow" => {
                    table.by_workflow.insert(rule.target, rule.answer);
                }
                _ => {}
            }
        }
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// The answer for a callback routed through `queue` by `workflow`.
    pub fn answer_for(&self, queue: Option<&str>, workflow: Option<&str>) -> String {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner()).clone();
        queue
            .and_then(|q| table.by_queue.get(q))
            .or_else(|| workflow.and_then(|w| table.by_workflow.get(w)))
            .or(table.global.as_ref())
            .cloned()
            .unwrap_or_else(|| DEFER.to_string())
    }
}

/// The settings form: which rule, and the instruction with its fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstructionForm {
    /// `global`, `queue` or `workflow`.
    pub scope: String,
    #[serde(default)]
    pub target: String,
    /// `defer`, `accept`, `reject`, `dequeue`, `call` or `redirect`.
    pub instruction: String,
    #[serde(default)]
    pub activity_sid: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub post_work_activity_sid: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub call_sid: String,
}

/// Builds the answer a form describes and checks it as TaskRouter would; the error says what
/// to fix.
///
/// # Errors
/// A sentence for the user when the rule or the instruction is incomplete or wrong.
pub fn rule_from_form(form: &InstructionForm, now_ms: i64) -> Result<InstructionRule, String> {
    let target = form.target.trim().to_string();
    match form.scope.as_str() {
        "global" if target.is_empty() => {}
        "global" => return Err("a global rule names no queue or workflow".into()),
        "queue" if target.starts_with("WQ") && target.len() == 34 => {}
        "queue" => return Err(format!("{target:?} is not a TaskQueue SID (WQ…, 34 characters)")),
        "workflow" if target.starts_with("WW") && target.len() == 34 => {}
        "workflow" => return Err(format!("{target:?} is not a Workflow SID (WW…, 34 characters)")),
        other => return Err(format!("{other:?} is not a scope (global, queue or workflow)")),
    }
    // Kept in insertion order (instruction first), as people write and read them.
    let mut answer: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut put = |key: &'static str, value: &str| {
        if !value.trim().is_empty() {
            answer.push((key, value.trim().into()));
        }
    };
    match form.instruction.as_str() {
        "defer" => {}
        "accept" => put("instruction", "accept"),
        "reject" => {
            put("instruction", "reject");
            put("activity_sid", &form.activity_sid);
        }
        "dequeue" => {
            put("instruction", "dequeue");
            put("from", &form.from);
            put("to", &form.to);
            put("post_work_activity_sid", &form.post_work_activity_sid);
        }
        "call" => {
            put("instruction", "call");
            put("from", &form.from);
            put("to", &form.to);
            put("url", &form.url);
        }
        "redirect" => {
            put("instruction", "redirect");
            put("call_sid", &form.call_sid);
            put("url", &form.url);
            answer.push(("accept", true.into()));
        }
        other => return Err(format!("{other:?} is not an instruction")),
    }
    let fields: Vec<String> =
        answer.iter().map(|(key, value)| format!("{}:{value}", serde_json::Value::from(*key))).collect();
    let body = format!("{{{}}}", fields.join(","));
    let check = check_assignment_answer(200, Some("application/json"), body.as_bytes(), 0);
    if let Some(error) = check.findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(format!("TaskRouter would ignore {body}: {}. {}", error.problem, error.fix));
    }
    Ok(InstructionRule { scope: form.scope.clone(), target, answer: body, updated_at_ms: now_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(scope: &str, target: &str, instruction: &str) -> InstructionForm {
        InstructionForm {
            scope: scope.into(),
            target: target.into(),
            instruction: instruction.into(),
            ..InstructionForm::default()
        }
    }

    #[test]
    fn forms_become_checked_answers() {
        assert_eq!(rule_from_form(&form("global", "", "defer"), 1).unwrap().answer, "{}");
        assert_eq!(
            rule_from_form(&form("global", "", "accept"), 1).unwrap().answer,
            r#"{"instruction":"accept"}"#
        );
        let mut reject = form("queue", "WQ0123456789abcdef0123456789abcdef", "reject");
        reject.activity_sid = "WA0123456789abcdef0123456789abcdef".into();
        assert!(rule_from_form(&reject, 1).unwrap().answer.contains("\"activity_sid\""));
        let error = rule_from_form(&form("global", "", "call"), 1).unwrap_err();
        assert!(error.contains("url"), "{error}");
        assert!(rule_from_form(&form("queue", "WW0123456789abcdef0123456789abcdef", "accept"), 1).is_err());
        assert!(rule_from_form(&form("global", "", "launch"), 1).is_err());
    }

    #[test]
    fn the_narrowest_rule_wins() {
        let instructions = AssignmentInstructions::default();
        assert_eq!(instructions.answer_for(Some("WQ1"), None), "{}");
        let mut table = RuleTable { global: Some("G".into()), ..RuleTable::default() };
        table.by_queue.insert("WQ1".into(), "Q".into());
        table.by_workflow.insert("WW1".into(), "W".into());
        *instructions.table.write().unwrap() = Arc::new(table);
        assert_eq!(instructions.answer_for(Some("WQ1"), Some("WW1")), "Q");
        assert_eq!(instructions.answer_for(Some("WQ2"), Some("WW1")), "W");
        assert_eq!(instructions.answer_for(Some("WQ2"), Some("WW2")), "G");
    }
}
