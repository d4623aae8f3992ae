//! "Are you sure?" before a destructive action, without JavaScript: the form's first POST
//! changes nothing and answers a page that names what will happen, with the same form again
//! (`confirm=yes`) and a way back. Only the second POST acts.

use actix_web::{HttpResponse, http::StatusCode};
use askama::Template;

use crate::auth::Identity;
use crate::error::PageError;
use crate::routes::{Nav, html};

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    nav: Option<Nav>,
    csrf: String,
    title: &'a str,
    question: &'a str,
    button: &'a str,
    action: &'a str,
    cancel: &'a str,
    back: Option<&'a str>,
}

/// What the confirmation page asks, and where each answer goes.
pub struct Question<'a> {
    pub title: &'a str,
    /// What will happen, in a sentence or two.
    pub question: String,
    /// The button that does it, naming the action ("Disable gina").
    pub button: String,
    /// The form's own address: the confirmed POST goes there again.
    pub action: &'a str,
    /// Where "Cancel" leads: the page the form was on.
    pub cancel: &'a str,
    /// The form's `back` field, carried through.
    pub back: Option<&'a str>,
}

/// Whether the form was sent from the confirmation page.
pub fn confirmed(field: Option<&str>) -> bool {
    field == Some("yes")
}

pub fn ask(identity: &Identity, question: Question<'_>) -> Result<HttpResponse, PageError> {
    let nav = Nav::for_identity(identity)?;
    html(
        StatusCode::OK,
        &ConfirmPage {
            csrf: nav.csrf.clone(),
            nav: Some(nav),
            title: question.title,
            question: &question.question,
            button: &question.button,
            action: question.action,
            cancel: question.cancel,
            back: question.back,
        },
    )
}
