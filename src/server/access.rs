//! Who may do what from outside: the rules the route table and the
//! built-in apps both apply to a request.

use crate::proto::http::HttpRequest;

/// Who may publish from outside (`POST /publish/<topic>`, the feed's
/// `publish` op).
#[derive(Debug, Clone)]
pub(super) struct PublishRule {
    pub allow_all: bool,
    pub token: Option<String>,
}

impl PublishRule {
    pub(super) fn allows(&self, http: &HttpRequest) -> bool {
        self.allow_all
            || self
                .token
                .as_deref()
                .is_some_and(|t| http.presents_token(t))
    }
}
