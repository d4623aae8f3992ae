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
    /// Offer "Keep me signed in on this device" (session mode, `session.remember_me_secs`).
    pub remember_me: bool,
    pub username: &'a str,
    pub message: Option<&'a str>,
    /// Why the person is here ("Your session was ended"), from the redirect that sent them.
    pub notice: Option<&'a str>,
    pub nav: Option<crate::routes::Nav>,
}

/// Whether the form offers "remember me": session mode with `session.remember_me_secs` set.
pub fn offers_remember_me(settings: &crate::config::Settings) -> bool {
    settings.auth.mode == crate::config::AuthMode::Session && settings.session.remember_me_secs > 0
}

impl LoginPage<'_> {
    pub fn respond(&self, status: StatusCode) -> Result<HttpResponse, PageError> {
        let mut response = HttpResponse::build(status);
        response.content_type("text/html; charset=utf-8");
        // Back to the app after login is a redirect the form's policy must allow.
        if let Some(origin) = self
            .rd
            .and_then(|rd| url::Url::parse(rd).ok())
            .map(|rd| rd.origin().ascii_serialization())
        {
            response.insert_header((
                actix_web::http::header::CONTENT_SECURITY_POLICY,
                crate::web::middleware::content_security_policy_with_form_target(&origin),
            ));
        }
        Ok(response.body(self.render()?))
    }
}
