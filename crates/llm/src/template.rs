//! The model's own chat template (Jinja, from `tokenizer_config.json`, `chat_template.jinja`
//! or GGUF metadata), rendered with minijinja the way Hugging Face `transformers` does.

use minijinja::{context, Environment, ErrorKind};

use crate::{LlmError, Message};

/// ChatML, used only when a Qwen-family model ships no template of its own (Qwen models are
/// trained on this format).
pub const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos`/`eos` are the strings templates may refer to as
    /// `bos_token`/`eos_token`.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks.
        env.set_syntax(hf_syntax()?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| -> String {
            strftime_now(&fmt)
        });
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| LlmError::Template(e.to_string()))?;
        Ok(Self {
            env,
            bos: bos.to_owned(),
            eos: eos.to_owned(),
        })
    }

    /// The prompt text for `messages`, ending with the assistant's turn opening.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => minijinja::value::Serde(messages),
            add_generation_prompt => true,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
            // Qwen3 templates: answer directly, without a thinking section.
            enable_thinking => false,
        })
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            LlmError::Template(msg)
        })
    }
}

/// transformers renders with `trim_blocks` and `lstrip_blocks`.
pub fn hf_syntax() -> Result<minijinja::syntax::SyntaxConfig, LlmError> {
    minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| LlmError::Template(e.to_string()))
}

/// The few `strftime` codes chat templates use for "today's date" (UTC).
fn strftime_now(fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let month = MONTHS[(m - 1) as usize];
    fmt.replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", month)
        .replace("%b", &month[..3])
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let s = t
            .render(&[Message::system("s"), Message::user("안녕")])
            .unwrap();
        assert_eq!(
            s,
            "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\n안녕<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{% for m in messages %}{{ m.content.strip().upper() }}|{{ m.content.startswith(' h') }}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[Message::user(" hi ")]).unwrap(), "HI|True");
        let err = t.render(&[Message::system("x")]).unwrap_err().to_string();
        assert!(err.contains("first must be user"), "{err}");
    }

    /// The constructs of Qwen3's published template (our own text): namespace, reversed
    /// slices, `is string`, `in`, split/lstrip, `enable_thinking`.
    #[test]
    fn qwen3_style_template_constructs() {
        let src = r#"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set content = message.content if message.content is string else '' %}
    {%- if message.role == "assistant" and '</think>' in content %}
        {%- set content = content.split('</think>')[-1].lstrip('\n') %}
    {%- endif %}
    {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' }}
{%- endfor %}
{%- if tools %}{{ raise_exception('no tools here') }}{% endif %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
{{- ns.last_query_index }}"#;
        let t = ChatTemplate::new(src, "", "<|im_end|>").unwrap();
        let out = t
            .render(&[
                Message::user("첫 질문"),
                Message::assistant("<think>생각</think>\n\n답"),
                Message::user("둘째"),
            ])
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\n첫 질문<|im_end|>\n<|im_start|>assistant\n답<|im_end|>\n<|im_start|>user\n둘째<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n2"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }
}
