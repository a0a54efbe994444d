use std::fmt;

/// A value that never prints itself: configuration secrets, keys, tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A connection URL (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`, `NATS_URL`): used as the
/// string it is (no `Display`: `to_string` must not hand out a broken URL), printed by
/// `Debug` and [`ConnectionUrl::redacted`] without its password, in the user part
/// (`postgres://app:***@db/eventra`) or a `password` parameter (`?password=***`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionUrl(url.into())
    }

    /// The URL with its password.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
            // A `key=value` connection string.
            return url
                .split(' ')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ");
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let authority = match authority.rfind('@') {
            Some(at) => {
                let user_info = &authority[..at];
                let user = user_info.split(':').next().unwrap_or_default();
                if user_info.contains(':') {
                    format!("{user}:***{}", &authority[at..])
                } else {
                    authority.to_owned()
                }
            }
            None => authority.to_owned(),
        };
        format!(
            "{}{authority}{}",
            &url[..scheme_end],
            redact_parameters(&rest[authority_end..])
        )
    }
}

/// `password=…` (and `pass=`, `secret=`, `token=`) parameters of a query string as `***`.
fn redact_parameters(text: &str) -> String {
    let Some(query_start) = text.find('?') else {
        return text.to_owned();
    };
    let (path, query) = text.split_at(query_start + 1);
    let parameters: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if ["password", "pass", "secret", "token"]
                    .iter()
                    .any(|secret| name.eq_ignore_ascii_case(secret)) =>
            {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}{}", parameters.join("&"))
}

impl std::ops::Deref for ConnectionUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ConnectionUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ConnectionUrl {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_ref()
    }
}

impl From<String> for ConnectionUrl {
    fn from(url: String) -> Self {
        ConnectionUrl(url)
    }
}

impl From<&str> for ConnectionUrl {
    fn from(url: &str) -> Self {
        ConnectionUrl(url.to_owned())
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("hunter2-hunter2".to_owned());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn a_connection_url_prints_without_its_password() {
        let cases = [
            (
                "postgres://app:hunter2@db:5432/eventra",
                "postgres://app:***@db:5432/eventra",
            ),
            // A password holding `@` and `:` (percent-encoding forgotten) still goes.
            (
                "postgres://app:hun@ter:2@db/eventra?sslmode=require",
                "postgres://app:***@db/eventra?sslmode=require",
            ),
            (
                "postgres://root@127.0.0.1:5432/eventra",
                "postgres://root@127.0.0.1:5432/eventra",
            ),
            (
                "postgres://db/eventra?user=app&password=hunter2",
                "postgres://db/eventra?user=app&password=***",
            ),
            ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
            (
                "smtps://mailer:hunter2@smtp.example.com:465?tls=required",
                "smtps://mailer:***@smtp.example.com:465?tls=required",
            ),
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            (
                "host=db user=app password=hunter2",
                "host=db user=app password=***",
            ),
        ];
        for (url, printed) in cases {
            let url = ConnectionUrl::new(url);
            assert_eq!(url.redacted(), printed);
            assert!(!format!("{url:?}").contains("hunter2"), "{url:?}");
        }
        // The URL itself is untouched.
        assert_eq!(
            &*ConnectionUrl::new("postgres://app:hunter2@db/eventra"),
            "postgres://app:hunter2@db/eventra"
        );
    }
}
