//! Schema-constrained decoding with llguidance.
//!
//! llguidance needs a token trie (the bytes of every token) and a way to tokenize bytes.
//! Its own bridge targets an older `tokenizers`; here the trie is built from
//! [`TextTokenizer`]'s bytes and tokenizing goes through our `tokenizers` 0.23 tokenizer.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use serde_json::Value;

use crate::tokenizer::TextTokenizer;
use crate::LlmError;

struct Env {
    trie: TokTrie,
    tokenizer: Arc<TextTokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        match std::str::from_utf8(s) {
            Ok(text) => self
                .tokenizer
                .encode(text)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            // A partial character: the trie's greedy split is exact for byte-level BPE.
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Grammar compiler for one model's vocabulary; build once per model, it precomputes token
/// classes.
pub struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    /// For a model with `vocab_size` logits (may exceed the tokenizer's ids) whose turn ends
    /// with `eos`.
    pub fn new(
        tokenizer: Arc<TextTokenizer>,
        vocab_size: usize,
        eos: u32,
    ) -> Result<Self, LlmError> {
        let mut words = tokenizer.trie_words().to_vec();
        words.resize(vocab_size.max(words.len()), Vec::new());
        let info = TokRxInfo::new(words.len() as u32, eos);
        let trie = TokTrie::from(&info, &words);
        let env: TokEnv = Arc::new(Env { trie, tokenizer });
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| LlmError::Schema(e.to_string()))?;
        factory.quiet();
        Ok(Self { factory })
    }

    /// A matcher that accepts exactly the compact JSON documents valid against `schema`.
    pub fn json_schema(&self, schema: &Value) -> Result<Constraint, LlmError> {
        if !schema.is_object() {
            return Err(LlmError::Schema("the schema must be a JSON object".into()));
        }
        let mut schema = schema.clone();
        // No free whitespace between tokens: a weak model could otherwise pad forever.
        JsonCompileOptions {
            whitespace_flexible: false,
            lenient: true,
            ..Default::default()
        }
        .apply_to(&mut schema);
        self.grammar(TopLevelGrammar::from_json_schema(schema))
    }

    /// A matcher for any JSON object.
    pub fn json_object(&self) -> Result<Constraint, LlmError> {
        self.json_schema(&serde_json::json!({"type": "object"}))
    }

    fn grammar(&self, g: TopLevelGrammar) -> Result<Constraint, LlmError> {
        let parser = self
            .factory
            .create_parser(g)
            .map_err(|e| LlmError::Schema(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(LlmError::Schema(e));
        }
        Ok(Constraint { matcher })
    }
}

/// The grammar state of one generation.
pub struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// Which tokens may come next; `None` once the grammar has stopped.
    pub fn allowed(&mut self) -> Result<Option<llguidance::toktrie::SimpleVob>, LlmError> {
        if self.matcher.is_stopped() {
            return Ok(None);
        }
        self.matcher
            .compute_mask()
            .map(Some)
            .map_err(|e| LlmError::Internal(format!("grammar: {e}")))
    }

    /// Advances the grammar past a sampled token.
    pub fn consume(&mut self, token: u32) -> Result<(), LlmError> {
        self.matcher
            .consume_token(token)
            .map_err(|e| LlmError::Internal(format!("grammar: {e}")))
    }

    /// Whether what was consumed so far is a complete document.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Whether the grammar allows nothing more (complete, or failed).
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }
}
