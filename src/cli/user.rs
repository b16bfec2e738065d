//! `tollgate user add|list|set`: manage users in the server's store.
//!
//! The same rules as the admin API apply (`tollgate_server::accounts`):
//! e-mails are normalised, passwords follow the policy, plans must exist.
//! `user set … --disabled true` also revokes every token of the user at
//! once; a running server learns it within a second.
//!
//! Output: one line per user (`ID  EMAIL  plan=…  roles=…  enabled|disabled`),
//! or with `--json` one object per line:
//! `{"user_id","email","plan","roles","disabled"}` (and `"password"` once,
//! when `user add` generated one).
//!
//! Exit status: 0 done, 2 an error (invalid input, unknown user, database).

use std::io::{self, Read, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tollgate_core::Secret;
use tollgate_core::audit::AuditEvent;
use tollgate_core::opaque;
use tollgate_core::plans::Plans;
use tollgate_core::wire::User;
use tollgate_server::accounts;
use tollgate_store::{UserRecord, UserUpdate};

use super::Outcome;
use super::local::Local;
use super::settings::ConfigArgs;

/// `tollgate user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a strong password is
    /// generated and printed once.
    Add(AddArgs),
    /// List users, oldest first.
    List(ListArgs),
    /// Change a user's plan, roles or disabled flag. Disabling revokes
    /// every token of the user at once.
    Set(SetArgs),
}

/// Arguments of `user add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's e-mail address.
    email: String,
    /// Read the password from stdin (one line) instead of generating one.
    #[arg(long)]
    password_stdin: bool,
    /// A role (repeatable), e.g. `--role admin`.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// The plan [default: free].
    #[arg(long)]
    plan: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// Arguments of `user list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// Arguments of `user set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The user: an e-mail address or a user id.
    user: String,
    /// The new plan.
    #[arg(long)]
    plan: Option<String>,
    /// The new roles (repeatable; replaces every role).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Remove every role.
    #[arg(long, conflicts_with = "roles")]
    clear_roles: bool,
    /// Disable (and revoke every token) or re-enable.
    #[arg(long, value_name = "true|false")]
    disabled: Option<bool>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

impl UserCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            UserCommand::Add(args) => add(args),
            UserCommand::List(args) => list(args),
            UserCommand::Set(args) => set(args),
        }
    }
}

/// The plans the server would use.
pub fn plans(local: &Local) -> anyhow::Result<Plans> {
    match &local.config.plans_file {
        None => Ok(Plans::builtin()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the plans file {path}"))?;
            Plans::from_toml(&text).with_context(|| format!("the plans file {path} is invalid"))
        }
    }
}

fn view(user: UserRecord) -> User {
    User {
        user_id: user.id,
        email: user.email,
        plan: user.plan,
        roles: user.roles,
        disabled: user.disabled,
    }
}

fn print(out: &mut impl Write, user: &User, json: bool) -> io::Result<()> {
    if json {
        let text = serde_json::to_string(user).map_err(io::Error::other)?;
        return writeln!(out, "{text}");
    }
    let roles = if user.roles.is_empty() {
        "-".to_owned()
    } else {
        user.roles.join(",")
    };
    let state = if user.disabled { "disabled" } else { "enabled" };
    writeln!(
        out,
        "{}  {}  plan={}  roles={}  {}",
        user.user_id, user.email, user.plan, roles, state
    )
}

/// One line from stdin without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .context("cannot read the password from stdin")?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        bail!("no password on stdin");
    }
    Ok(line)
}

fn add(args: AddArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let plans = plans(&local)?;
    let (password, generated) = if args.password_stdin {
        (read_password()?, false)
    } else {
        let secret = opaque::generate("")?;
        let text = secret
            .expose_str()
            .context("a generated password")?
            .to_owned();
        (text, true)
    };
    let roles = (!args.roles.is_empty()).then_some(args.roles);
    let user = accounts::check_new_user(&plans, &args.email, &password, args.plan, roles)?;
    let created = local.block_on(async {
        let hash = accounts::hash_password(Secret::from(password.as_str())).await?;
        accounts::insert_user(local.store.as_ref(), user, hash, local.now()).await
    })?;
    let user = view(created);
    let event = AuditEvent::UserCreated {
        user_id: user.user_id.clone(),
        plan: user.plan.clone(),
        roles: user.roles.clone(),
    };
    let mut out = io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&user)?;
        if generated {
            value["password"] = password.into();
        }
        writeln!(out, "{value}")?;
    } else {
        write!(out, "created ")?;
        print(&mut out, &user, false)?;
        if generated {
            writeln!(out, "password {password}")?;
            writeln!(out, "(shown once: store it now)")?;
        }
    }
    out.flush()?;
    // After the output: the password is shown even if the recording fails.
    local.audit(vec![event])?;
    Ok(Outcome::Success)
}

fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let mut out = io::stdout().lock();
    let mut after: Option<String> = None;
    loop {
        let page = local.block_on(local.store.list_users(after.as_deref(), 500))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        let full = page.len() == 500;
        for user in page {
            print(&mut out, &view(user), args.json)?;
        }
        if !full {
            break;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn set(args: SetArgs) -> anyhow::Result<Outcome> {
    let local = Local::open(&args.settings)?;
    let plans = plans(&local)?;
    let roles = if args.clear_roles {
        Some(Vec::new())
    } else if args.roles.is_empty() {
        None
    } else {
        Some(accounts::check_roles(args.roles)?)
    };
    let plan_given = args.plan.is_some();
    let update = UserUpdate {
        plan: accounts::check_plan(&plans, args.plan)?,
        roles,
        disabled: args.disabled,
    };
    if update == UserUpdate::default() {
        bail!("nothing to change: pass --plan, --role, --clear-roles or --disabled");
    }
    let changes = update.clone();
    let user = local.block_on(async {
        let store = local.store.as_ref();
        let found = if args.user.contains('@') {
            store
                .find_user_by_email(&tollgate_core::email::normalize(&args.user)?)
                .await?
        } else {
            store.find_user(&args.user).await?
        };
        let Some(found) = found else {
            bail!("no user {}", args.user);
        };
        let updated = store
            .update_user(&found.id, update)
            .await?
            .with_context(|| format!("no user {}", args.user))?;
        if plan_given {
            accounts::announce_plan(
                store,
                &local.config,
                &updated.id,
                &updated.plan,
                local.now(),
            )
            .await?;
        }
        if args.disabled == Some(true) {
            accounts::revoke_subject(store, &local.config, &updated.id, local.now()).await?;
        }
        Ok(updated)
    })?;
    let mut events = vec![AuditEvent::UserUpdated {
        user_id: user.id.clone(),
        plan: changes.plan,
        roles: changes.roles,
        disabled: changes.disabled,
    }];
    if args.disabled == Some(true) {
        events.push(AuditEvent::Revoked {
            kind: "user",
            value: user.id.clone(),
        });
    }
    local.audit(events)?;
    let mut out = io::stdout().lock();
    print(&mut out, &view(user), args.json)?;
    if args.disabled == Some(true) && !args.json {
        writeln!(out, "every token of the user is revoked")?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}
