//! Who you are, shown in the top bar, and [`Allowed`]: controls your role may not use are
//! shown disabled, with a sentence saying which role they need and who to ask. The server
//! enforces roles anyway; this keeps people from pressing buttons that would be refused.

use leptos::prelude::*;

use crate::identity::{AuthSource, Identity, Role};

/// The caller as the server sees them (identity headers, token or anonymous).
#[server(endpoint = "whoami", input = leptos::server_fn::codec::GetUrl, output = crate::codec::Json)]
pub async fn whoami() -> Result<Identity, crate::error::AppError> {
    Ok(crate::backend::caller())
}

/// Loaded once per page load, shared by every page.
#[derive(Clone, Copy)]
pub struct Me(pub Resource<Result<Identity, crate::error::AppError>>);

pub fn provide_me() -> Me {
    let me = Me(Resource::new(|| (), |_| whoami()));
    provide_context(me);
    me
}

impl Me {
    /// Whether the caller may do what `role` may; `false` while unknown.
    pub fn may(&self, role: Role) -> bool {
        self.0
            .get()
            .and_then(Result::ok)
            .is_some_and(|who| who.may(role))
    }
}

#[component]
pub fn WhoAmI() -> impl IntoView {
    let me = expect_context::<Me>();
    view! {
        <Transition fallback=|| ()>
            {move || me.0.get().and_then(Result::ok).map(|who| {
                let how = match who.source {
                    AuthSource::Anonymous => "not signed in",
                    AuthSource::Proxy => "signed in through the proxy",
                    AuthSource::Token => "API token",
                    AuthSource::System => "perfpilot itself",
                };
                view! {
                    <span class="whoami" id="whoami" title=format!("{how}; role {}", who.role)>
                        <span class="whoami-user">{who.user.clone()}</span>
                        <span class=format!("role role-{}", who.role)>{who.role.as_str()}</span>
                    </span>
                }
            })}
        </Transition>
    }
}

/// Why `what` is off for the caller: the role it needs, the role they have, and who can
/// change that. The one wording of a role refusal in the UI ("Saving a target needs the
/// editor role — you have the viewer role; ask an admin for access.").
pub fn role_reason(what: &str, needed: Role, have: Option<Role>) -> String {
    match have {
        Some(have) => format!(
            "{what} needs the {needed} role — you have the {have} role; ask an admin for access."
        ),
        None => format!(
            "{what} needs the {needed} role — who you are could not be checked; reload the page."
        ),
    }
}

/// Renders `children` as they are when the caller's role allows `role`. Otherwise the same
/// controls are shown disabled (inside a disabled `fieldset`, so every button and field in
/// them is off) with [`role_reason`] beside them: a control is never offered and then
/// refused by the server. Nothing renders until the caller is known.
#[component]
pub fn Allowed(role: Role, what: &'static str, children: ChildrenFn) -> impl IntoView {
    let me = expect_context::<Me>();
    let children = StoredValue::new(children);
    view! {
        <Transition fallback=|| ()>
            {move || me.0.get().map(|who| {
                let have = who.as_ref().ok().map(|who| who.role);
                if have.is_some_and(|have| have.allows(role)) {
                    return children.with_value(|children| children()).into_any();
                }
                view! {
                    <fieldset class="role-gate" disabled=true>
                        {children.with_value(|children| children())}
                        <p class="muted needs-role" data-needs-role=role.as_str()>
                            {role_reason(what, role, have)}
                        </p>
                    </fieldset>
                }
                .into_any()
            })}
        </Transition>
    }
}
