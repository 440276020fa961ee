//! Built-in presets for the APIs people use most: where the credential goes (hosts,
//! header, format), which variable SDKs read it from, and the shape of a real key — so
//! `tokenizer seal --for anthropic KEY` needs no further flags, and the sandbox's dummy
//! key (`tokenizer sideproxy env`) looks like a real one to SDKs that check (some refuse
//! a key without its usual prefix).

/// One API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// The name `--for` takes.
    pub name: &'static str,
    /// The API's display name (`OpenAI`, `GitHub API`).
    pub title: &'static str,
    /// The hosts the credential may be sent to.
    pub hosts: &'static [&'static str],
    /// The header that carries it, and its format (`%s`: the key).
    pub header: &'static str,
    /// The header value's format: `%s` is replaced by the key (`Bearer %s`).
    pub fmt: &'static str,
    /// The variables SDKs and CLIs read the key from.
    pub env: &'static [&'static str],
    /// A key's usual prefix, and how many characters follow it.
    pub prefix: &'static str,
    /// How many characters follow the prefix in a real key.
    pub body_len: usize,
}

const BEARER: &str = "Bearer %s";

/// Every preset, by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "openai",
        title: "OpenAI",
        hosts: &["api.openai.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["OPENAI_API_KEY"],
        prefix: "sk-proj-",
        body_len: 156,
    },
    Preset {
        name: "anthropic",
        title: "Anthropic",
        hosts: &["api.anthropic.com"],
        header: "x-api-key",
        fmt: "%s",
        env: &["ANTHROPIC_API_KEY"],
        prefix: "sk-ant-api03-",
        body_len: 95,
    },
    Preset {
        name: "github",
        title: "GitHub API",
        hosts: &["api.github.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["GH_TOKEN", "GITHUB_TOKEN"],
        prefix: "ghp_",
        body_len: 36,
    },
    Preset {
        name: "gitlab",
        title: "GitLab",
        hosts: &["gitlab.com"],
        header: "PRIVATE-TOKEN",
        fmt: "%s",
        env: &["GITLAB_TOKEN"],
        prefix: "glpat-",
        body_len: 20,
    },
    Preset {
        name: "stripe",
        title: "Stripe",
        hosts: &["api.stripe.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["STRIPE_API_KEY"],
        prefix: "sk_test_",
        body_len: 99,
    },
    Preset {
        name: "slack",
        title: "Slack",
        hosts: &["slack.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["SLACK_BOT_TOKEN"],
        prefix: "xoxb-",
        body_len: 50,
    },
    Preset {
        name: "huggingface",
        title: "Hugging Face",
        hosts: &[
            "huggingface.co",
            "router.huggingface.co",
            "api-inference.huggingface.co",
        ],
        header: "Authorization",
        fmt: BEARER,
        env: &["HF_TOKEN"],
        prefix: "hf_",
        body_len: 34,
    },
    Preset {
        name: "google-ai",
        title: "Google AI (Gemini API)",
        hosts: &["generativelanguage.googleapis.com"],
        header: "x-goog-api-key",
        fmt: "%s",
        env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        prefix: "AIza",
        body_len: 35,
    },
    Preset {
        name: "mistral",
        title: "Mistral AI",
        hosts: &["api.mistral.ai"],
        header: "Authorization",
        fmt: BEARER,
        env: &["MISTRAL_API_KEY"],
        prefix: "",
        body_len: 32,
    },
    Preset {
        name: "groq",
        title: "Groq",
        hosts: &["api.groq.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["GROQ_API_KEY"],
        prefix: "gsk_",
        body_len: 52,
    },
    Preset {
        name: "linear",
        title: "Linear",
        hosts: &["api.linear.app"],
        header: "Authorization",
        fmt: "%s",
        env: &["LINEAR_API_KEY"],
        prefix: "lin_api_",
        body_len: 40,
    },
    Preset {
        name: "cohere",
        title: "Cohere",
        hosts: &["api.cohere.com", "api.cohere.ai"],
        header: "Authorization",
        fmt: BEARER,
        env: &["CO_API_KEY", "COHERE_API_KEY"],
        prefix: "",
        body_len: 40,
    },
    Preset {
        name: "openrouter",
        title: "OpenRouter",
        hosts: &["openrouter.ai"],
        header: "Authorization",
        fmt: BEARER,
        env: &["OPENROUTER_API_KEY"],
        prefix: "sk-or-v1-",
        body_len: 64,
    },
    Preset {
        name: "xai",
        title: "xAI",
        hosts: &["api.x.ai"],
        header: "Authorization",
        fmt: BEARER,
        env: &["XAI_API_KEY"],
        prefix: "xai-",
        body_len: 80,
    },
    Preset {
        name: "perplexity",
        title: "Perplexity",
        hosts: &["api.perplexity.ai"],
        header: "Authorization",
        fmt: BEARER,
        env: &["PERPLEXITY_API_KEY"],
        prefix: "pplx-",
        body_len: 48,
    },
    Preset {
        name: "deepseek",
        title: "DeepSeek",
        hosts: &["api.deepseek.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["DEEPSEEK_API_KEY"],
        prefix: "sk-",
        body_len: 32,
    },
    Preset {
        name: "together",
        title: "Together AI",
        hosts: &["api.together.xyz"],
        header: "Authorization",
        fmt: BEARER,
        env: &["TOGETHER_API_KEY"],
        prefix: "",
        body_len: 64,
    },
    Preset {
        name: "notion",
        title: "Notion",
        hosts: &["api.notion.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["NOTION_API_KEY"],
        prefix: "ntn_",
        body_len: 46,
    },
    Preset {
        name: "sendgrid",
        title: "SendGrid",
        hosts: &["api.sendgrid.com"],
        header: "Authorization",
        fmt: BEARER,
        env: &["SENDGRID_API_KEY"],
        prefix: "SG.",
        body_len: 66,
    },
];

impl Preset {
    /// The preset named `name` (case-insensitive).
    pub fn named(name: &str) -> Option<&'static Self> {
        PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The preset whose API lives at `host`.
    pub fn for_host(host: &str) -> Option<&'static Self> {
        PRESETS
            .iter()
            .find(|p| p.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }

    /// A placeholder with the real key's shape: its prefix, then `tokenizerDUMMY` and a
    /// filler to the usual length. Never a working key; obviously not a real one to a
    /// reader.
    pub fn dummy_key(&self) -> String {
        const MARK: &str = "tokenizerDUMMY";
        let mut key = format!("{}{MARK}", self.prefix);
        let filler = self.body_len.saturating_sub(MARK.len());
        key.extend(std::iter::repeat_n('0', filler));
        key
    }

    /// Does `text` look like this API's key (its prefix, roughly its length)?
    pub fn looks_like_key(&self, text: &str) -> bool {
        text.starts_with(self.prefix) && text.len() >= self.prefix.len() + self.body_len / 2
    }
}

/// The names, for messages.
pub fn names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_unique_and_dummies_look_like_keys() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(PRESETS[..i].iter().all(|q| q.name != p.name), "{}", p.name);
            assert!(p.fmt.matches("%s").count() == 1, "{}", p.name);
            let dummy = p.dummy_key();
            assert!(p.looks_like_key(&dummy), "{}: {dummy}", p.name);
            assert!(dummy.contains("tokenizerDUMMY"));
            for host in p.hosts {
                assert_eq!(Preset::for_host(host).map(|q| q.name), Some(p.name));
            }
        }
        assert_eq!(Preset::named("Anthropic").unwrap().header, "x-api-key");
        assert!(Preset::named("nope").is_none());
        assert_eq!(PRESETS.len(), 19);
    }
}
