//! The one table the router is built from. The OpenAPI test reads the same table, so a route
//! cannot be served without being documented, nor documented without being served.

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{MethodFilter, on},
};

use crate::state::AppState;

/// One (method, path) the API serves, with the path in axum's (and OpenAPI's) `{param}` syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: &'static str,
}

/// Routes and the router they make, built together so they cannot drift apart.
pub struct Routes {
    router: Router<AppState>,
    entries: Vec<Route>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            entries: Vec::new(),
        }
    }

    /// Serves `handler` for `method` on `path`. Several methods on one path share its route.
    pub fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .expect("routes are added with the standard methods only");
        self.router = self.router.route(path, on(filter, handler));
        self.entries.push(Route {
            method: method.as_str().to_string(),
            path,
        });
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.entries.extend(other.entries);
        self
    }

    pub fn entries(&self) -> &[Route] {
        &self.entries
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
