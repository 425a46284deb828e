//! Answering a wait: from `--approve`, `--reject` or `--resume`, else by asking at the terminal
//! (an approval with an optional comment, Enter to resume a pause, the next Interactive step),
//! else giving up with exit code 3 when there is no terminal to ask at.

use super::EXIT_UNANSWERED;
use super::Fail;
use super::runner::Runner;
use super::signals::{Answer, Applied};
use super::waits::Wait;
use std::io::{BufRead, Write};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The question on screen.
pub(super) struct Prompt {
    pub(super) key: String,
    wait: Wait,
    /// A comment typed in answer to an approval, awaiting y/N.
    comment: Option<String>,
}

impl Runner<'_> {
    /// Answers a wait from the flags, asks at the terminal, or gives up (`Some(exit code)`).
    pub(super) async fn answer(&mut self, key: String, wait: Wait) -> Result<Option<i32>, Fail> {
        let flagged = match &wait {
            Wait::Approve { .. } if self.args.approve => Some(Answer::Approve(Some("Approved with --approve".into()))),
            Wait::Approve { .. } if self.args.reject => Some(Answer::Reject(Some("Rejected with --reject".into()))),
            Wait::Pause { .. } if self.args.resume => Some(Answer::Resume),
            _ => None,
        };
        if let Some(a) = flagged {
            return Ok(match self.apply(&wait, a).await {
                Applied::Done | Applied::Again => {
                    self.answered.insert(key);
                    None
                }
                Applied::Stuck(code) => Some(code),
            });
        }
        if !self.tty {
            let why = match &wait {
                Wait::Approve { step, .. } => {
                    format!("Step {step} waits for an approval, and there is no terminal to ask at: run again with --approve or --reject.")
                }
                Wait::Pause { step, .. } => {
                    format!("Step {step} is paused, and there is no terminal to ask at: run again with --resume.")
                }
                Wait::Next { .. } => "The Interactive execution waits for the next step to be chosen, and there is no terminal to ask at: run it from a terminal, or in Auto mode.".to_string(),
            };
            self.out.error(&why);
            if let Some(dir) = &self.args.keep_data {
                self.out.note(&format!("The execution is left waiting in {}.", dir.display()));
            }
            return Ok(Some(EXIT_UNANSWERED));
        }
        if self.input.is_none() {
            self.input = Some(read_stdin());
        }
        self.prompt = Some(Prompt { key, wait, comment: None });
        self.reask = false;
        self.ask();
        Ok(None)
    }

    /// Prints the question on screen (again).
    pub(super) fn ask(&self) {
        let Some(p) = &self.prompt else { return };
        let q = match (&p.wait, &p.comment) {
            (Wait::Approve { .. }, Some(c)) => format!("Approve with the comment \"{c}\"? [y/N] "),
            (Wait::Approve { .. }, None) => "Approve? [y/N/comment] ".to_string(),
            (Wait::Pause { step, .. }, _) => format!("Step {step} is paused. Press Enter to resume "),
            (Wait::Next { suggested, steps }, _) => {
                self.out.note(&format!("Steps: {}", steps.join(", ")));
                match suggested {
                    Some(s) => format!("Next step? [Enter: {s}, a step name, done, cancel] "),
                    None => "Next step? [a step name, Enter or done: complete, cancel] ".to_string(),
                }
            }
        };
        print!("{}", self.out.prompt(&q));
        let _ = std::io::stdout().flush();
    }

    /// Handles a line typed at a prompt.
    pub(super) async fn on_line(&mut self, line: String) -> Result<Option<i32>, Fail> {
        let Some(mut p) = self.prompt.take() else { return Ok(None) };
        let text = line.trim();
        let answer = match &p.wait {
            Wait::Approve { .. } => {
                let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
                let rest = rest.trim();
                let comment = p.comment.clone().or_else(|| (!rest.is_empty()).then(|| rest.to_string()));
                match word.to_ascii_lowercase().as_str() {
                    "y" | "yes" => Answer::Approve(comment),
                    "n" | "no" | "" => Answer::Reject(comment),
                    _ if p.comment.is_none() => {
                        p.comment = Some(text.to_string());
                        self.prompt = Some(p);
                        self.ask();
                        return Ok(None);
                    }
                    _ => Answer::Reject(comment),
                }
            }
            Wait::Pause { .. } => Answer::Resume,
            Wait::Next { suggested, .. } => match text {
                "" => suggested.clone().map_or(Answer::Complete, Answer::StartStep),
                "done" | "complete" => Answer::Complete,
                "cancel" => Answer::Cancel,
                step => Answer::StartStep(step.to_string()),
            },
        };
        match self.apply(&p.wait, answer).await {
            Applied::Done => {
                self.answered.insert(p.key);
                Ok(None)
            }
            Applied::Again => {
                p.comment = None;
                self.prompt = Some(p);
                self.ask();
                Ok(None)
            }
            Applied::Stuck(code) => Ok(Some(code)),
        }
    }
}

/// The next line typed (`None` at the end of the input); never ready while stdin is not read.
pub(super) async fn next_line(input: &mut Option<UnboundedReceiver<Option<String>>>) -> Option<String> {
    match input {
        Some(rx) => rx.recv().await.flatten(),
        None => std::future::pending().await,
    }
}

/// Lines from stdin, read on a thread of their own (`None` at the end of the input).
fn read_stdin() -> UnboundedReceiver<Option<String>> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        loop {
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    if tx.send(Some(line.trim_end_matches(['\r', '\n']).to_string())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
