//! atelier's writer: the text the workflows need, as schema-checked JSON from a language model.
//!
//! Each task ([`tasks`]) has typed input, a JSON schema for its output (length limits are
//! part of it), and a prompt template under `crates/writer/prompts/`. A local model decodes
//! under the schema; a remote one is validated and asked to repair. With no model configured
//! every task fails with [`WriterError::NoModel`], which says how to configure one: workflows
//! then take the same fields from the user. Nothing canned is ever presented as written.

pub mod tasks;

use atelier_llm::{CancelToken, Llm, LlmError, Message, SamplingParams};
use minijinja::Environment;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use tasks::{
    ComicPanels, ComicPanelsInput, Cut, ImagePrompt, ImagePromptInput, Panel, Storyboard,
    StoryboardInput, TicketCopy, TicketCopyInput,
};

/// Why a task produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// No language model is configured.
    #[error("the `{task}` task needs a language model and none is configured: start atelier with --llm <model folder or .gguf file> or --llm-url <OpenAI-compatible base URL> (see README, \"Language models\"){hint}")]
    NoModel { task: &'static str, hint: String },
    /// The task input is unusable; names the field.
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    /// No such task name.
    #[error("unknown writer task {0:?} (image_prompt, ticket_copy, comic_panels, storyboard)")]
    UnknownTask(String),
    /// The model failed (after retries and repairs where they apply).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A prompt template did not render (a bug in the repo's templates).
    #[error("prompt template {name}: {message}")]
    Template { name: String, message: String },
}

impl WriterError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        WriterError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One writer task: input, output shape and the prompt that asks for it.
pub trait Task: Sized + Serialize + DeserializeOwned {
    /// Input of the task.
    type Input: Serialize + DeserializeOwned;
    /// Name in APIs and in `prompts/<name>.{system,user}.j2`.
    const NAME: &'static str;
    /// What a user fills in instead when there is no model (for the error message).
    const MANUAL_FIELDS: &'static str;
    /// Rejects unusable input before any model runs.
    fn check(input: &Self::Input) -> Result<(), WriterError>;
    /// The JSON schema the final output satisfies for this input (e.g. the number of cuts).
    fn schema(input: &Self::Input) -> Value;
    /// The schema the model writes under; tighter than [`schema`](Task::schema) where
    /// [`normalize`](Task::normalize) adds text afterwards.
    fn generation_schema(input: &Self::Input) -> Value {
        Self::schema(input)
    }
    /// Fixes what a schema cannot express (numbering, required words, totals); the result
    /// still validates against [`schema`](Task::schema).
    fn normalize(&mut self, _input: &Self::Input) {}
}

/// A task result and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Written<T> {
    pub value: T,
    /// The model that wrote it.
    pub model: String,
    /// 1, or more when a remote model needed repairs.
    pub attempts: usize,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Same seed, same model, same input = same text (local models).
    pub seed: Option<u64>,
    /// Stops a running task.
    pub cancel: CancelToken,
}

/// Runs writer tasks on a configured model (or explains that none is).
#[derive(Clone)]
pub struct Writer {
    llm: Option<Llm>,
    /// Sampling for all tasks; `max_tokens` is an upper bound, raised per task as its schema
    /// needs.
    pub params: SamplingParams,
    /// Repair rounds for answers that do not validate (remote models).
    pub repairs: usize,
}

/// Runs `$body` with `$T` bound to the task type named `$task` (every task, one list).
macro_rules! for_task {
    ($task:expr, $T:ident => $body:expr) => {
        match $task {
            ImagePrompt::NAME => {
                type $T = ImagePrompt;
                $body
            }
            TicketCopy::NAME => {
                type $T = TicketCopy;
                $body
            }
            ComicPanels::NAME => {
                type $T = ComicPanels;
                $body
            }
            Storyboard::NAME => {
                type $T = Storyboard;
                $body
            }
            other => Err(WriterError::UnknownTask(other.to_owned())),
        }
    };
}

const PROMPTS: &[(&str, &str)] = &[
    (
        "image_prompt.system",
        include_str!("../prompts/image_prompt.system.j2"),
    ),
    (
        "image_prompt.user",
        include_str!("../prompts/image_prompt.user.j2"),
    ),
    (
        "ticket_copy.system",
        include_str!("../prompts/ticket_copy.system.j2"),
    ),
    (
        "ticket_copy.user",
        include_str!("../prompts/ticket_copy.user.j2"),
    ),
    (
        "comic_panels.system",
        include_str!("../prompts/comic_panels.system.j2"),
    ),
    (
        "comic_panels.user",
        include_str!("../prompts/comic_panels.user.j2"),
    ),
    (
        "storyboard.system",
        include_str!("../prompts/storyboard.system.j2"),
    ),
    (
        "storyboard.user",
        include_str!("../prompts/storyboard.user.j2"),
    ),
];

fn render(name: &str, input: &impl Serialize) -> Result<String, WriterError> {
    let err = |message: String| WriterError::Template {
        name: name.to_owned(),
        message,
    };
    let source = PROMPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| err("missing".into()))?;
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .build()
        .map_err(|e| err(e.to_string()))?;
    env.set_syntax(syntax);
    env.add_template("t", source)
        .map_err(|e| err(e.to_string()))?;
    let tmpl = env.get_template("t").map_err(|e| err(e.to_string()))?;
    tmpl.render(minijinja::value::Serde(input))
        .map(|s| s.trim().to_owned())
        .map_err(|e| err(e.to_string()))
}

impl Writer {
    /// A writer on `llm`; `None` makes every task fail with [`WriterError::NoModel`].
    pub fn new(llm: Option<Llm>) -> Self {
        Self {
            llm,
            params: SamplingParams {
                temperature: 0.7,
                max_tokens: 16_384,
                ..Default::default()
            },
            repairs: 2,
        }
    }

    /// The configured model, if any.
    pub fn llm(&self) -> Option<&Llm> {
        self.llm.as_ref()
    }

    /// The chat messages a task sends (system + user), for inspection and tests.
    pub fn messages<T: Task>(input: &T::Input) -> Result<Vec<Message>, WriterError> {
        T::check(input)?;
        Ok(vec![
            Message::system(render(&format!("{}.system", T::NAME), input)?),
            Message::user(render(&format!("{}.user", T::NAME), input)?),
        ])
    }

    /// Runs task `T` on `input`.
    pub async fn write<T: Task>(
        &self,
        input: &T::Input,
        opts: &WriteOptions,
    ) -> Result<Written<T>, WriterError> {
        let messages = Self::messages::<T>(input)?;
        let llm = self.llm.as_ref().ok_or_else(|| WriterError::NoModel {
            task: T::NAME,
            hint: format!(", or supply {} yourself", T::MANUAL_FIELDS),
        })?;
        let schema = T::generation_schema(input);
        let mut params = self.params.clone();
        params.seed = opts.seed.or(params.seed);
        let out = llm
            .structured(messages, &schema, params, self.repairs, opts.cancel.clone())
            .await?;
        let mut value: T =
            serde_json::from_value(out.value.clone()).map_err(|e| LlmError::InvalidOutput {
                attempts: out.attempts,
                message: format!("valid against the schema but not the expected shape: {e}"),
                raw: out.raw.clone(),
            })?;
        value.normalize(input);
        Ok(Written {
            value,
            model: llm.id().to_owned(),
            attempts: out.attempts,
            prompt_tokens: out.usage.prompt_tokens,
            completion_tokens: out.usage.completion_tokens,
        })
    }

    /// Runs a task named at run time on JSON input; returns the output as JSON.
    pub async fn write_json(
        &self,
        task: &str,
        input: Value,
        opts: &WriteOptions,
    ) -> Result<Written<Value>, WriterError> {
        async fn run<T: Task>(
            w: &Writer,
            input: Value,
            opts: &WriteOptions,
        ) -> Result<Written<Value>, WriterError> {
            let input: T::Input = serde_json::from_value(input)
                .map_err(|e| WriterError::invalid("input", e.to_string()))?;
            let out = w.write::<T>(&input, opts).await?;
            Ok(Written {
                value: serde_json::to_value(&out.value)
                    .map_err(|e| WriterError::invalid("output", e.to_string()))?,
                model: out.model,
                attempts: out.attempts,
                prompt_tokens: out.prompt_tokens,
                completion_tokens: out.completion_tokens,
            })
        }
        for_task!(task, T => run::<T>(self, input, opts).await)
    }

    /// The output schema of a task named at run time, for its input.
    pub fn schema_json(task: &str, input: Value) -> Result<Value, WriterError> {
        fn one<T: Task>(input: Value) -> Result<Value, WriterError> {
            let input: T::Input = serde_json::from_value(input)
                .map_err(|e| WriterError::invalid("input", e.to_string()))?;
            T::check(&input)?;
            Ok(T::schema(&input))
        }
        for_task!(task, T => one::<T>(input))
    }
}
