//! `GET /login` shows the form; `POST /login` checks it.

pub mod get;
pub mod post;

use actix_web::{HttpResponse, http::StatusCode};
use askama::Template;

use crate::error::PageError;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf: &'a str,
    pub next: Option<&'a str>,
    /// A proxy's `rd` that may be followed (an app's page), and the site it names.
    pub rd: Option<&'a str>,
    pub site: Option<&'a str>,
    pub username: &'a str,
    pub message: Option<&'a str>,
    /// Why the person is here ("Your session was ended"), from the redirect that sent them.
    pub notice: Option<&'a str>,
    pub nav: Option<crate::routes::Nav>,
}

impl LoginPage<'_> {
    pub fn respond(&self, status: StatusCode) -> Result<HttpResponse, PageError> {
        Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(self.render()?))
    }
}
