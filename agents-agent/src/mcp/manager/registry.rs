//! The registry of servers: adding one (by command, URL or a bundled
//! definition, through the seed's connection flow), configuring,
//! connecting and disconnecting, removing (its secrets too).

use super::super::store::{self, Bundled};
use super::super::{
    addition, catalog, secret_name, AddRequest, Addition, ConnectionState, ServerSpec, Status,
};
use super::{Manager, McpError, ServerView};
use std::collections::BTreeMap;

impl Manager {
    /// Add a server as `mcp add` asked: from a bundled definition, or by
    /// command or URL (checked first; nothing is stored when it is bad).
    pub async fn add_request(&self, r: AddRequest) -> Result<ServerView, McpError> {
        match addition(r).map_err(McpError::Invalid)? {
            Addition::Bundled {
                name,
                catalog_id,
                config,
                approval_policy,
            } => {
                self.add_bundled(&name, &catalog_id, config, &approval_policy)
                    .await
            }
            Addition::Own { spec, secrets } => self.add(spec, secrets).await,
        }
    }

    /// Register a server and connect to it; `secrets` (values of its secret
    /// variables or headers) go to the OS credential store first. The row
    /// is kept when the connection fails (its error shown by `list`), so
    /// `connect` retries.
    pub async fn add(
        &self,
        spec: ServerSpec,
        secrets: BTreeMap<String, String>,
    ) -> Result<ServerView, McpError> {
        self.register(spec, Bundled::default(), secrets, Vec::new(), true)
            .await
    }

    /// The bundled definitions and the person's own (with the problems of
    /// any definition file that could not be read).
    pub async fn catalog(&self) -> (Vec<catalog::Definition>, Vec<String>) {
        let dir = self.catalog_dir.clone();
        tokio::task::spawn_blocking(move || catalog::load(&dir))
            .await
            .unwrap_or_default()
    }

    async fn definition(&self, id: &str) -> Result<catalog::Definition, McpError> {
        let (defs, problems) = self.catalog().await;
        defs.into_iter().find(|d| d.id == id).ok_or_else(|| {
            McpError::Invalid(format!(
                "no bundled MCP server {id:?} (see `coworkctl mcp catalog`){}",
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("; unreadable definitions: {}", problems.join("; "))
                }
            ))
        })
    }

    /// Connect a bundled server (the seed's connection flow): SELECT_SERVICE,
    /// then CONFIG_REQUIRED while a required setting is missing (the server
    /// is kept, waiting for `configure`), AUTHENTICATING (secrets to the
    /// credential store), STARTING_SERVER, SAVING_CONFIG, CONNECTED.
    pub async fn add_bundled(
        &self,
        name: &str,
        catalog_id: &str,
        values: BTreeMap<String, String>,
        approval_policy: &str,
    ) -> Result<ServerView, McpError> {
        let def = self.definition(catalog_id).await?;
        let r =
            catalog::resolve(&def, name, &values, approval_policy).map_err(McpError::Invalid)?;
        let bundled = Bundled {
            catalog_id: def.id.clone(),
            config: r.config,
        };
        self.register(r.spec, bundled, r.secrets, r.missing, true)
            .await
    }

    /// Give a bundled server settings (new values replace old ones; secrets
    /// already stored are kept unless given again) and carry its connection
    /// flow on from there.
    pub async fn configure(
        &self,
        name: &str,
        values: BTreeMap<String, String>,
    ) -> Result<ServerView, McpError> {
        let row = self.row(name).await?;
        if row.bundled.catalog_id.is_empty() {
            return Err(McpError::Invalid(format!(
                "{name} was added by command or URL, not from the catalog; remove it and add \
                 it again to change it"
            )));
        }
        let def = self.definition(&row.bundled.catalog_id).await?;
        let mut merged = row.bundled.config.clone();
        for f in def.config.iter().filter(|f| f.secret) {
            if values.contains_key(&f.key) {
                continue;
            }
            let target = f.env.as_ref().or(f.header.as_ref());
            if let Some(t) = target {
                if let Ok(Some(v)) = crate::secrets::get(&secret_name(name, t)) {
                    // Stored with its prefix; resolve adds it again.
                    let bare = v.strip_prefix(&f.value_prefix).unwrap_or(&v).to_owned();
                    merged.insert(f.key.clone(), bare);
                }
            }
        }
        merged.extend(values);
        let r = catalog::resolve(&def, name, &merged, row.spec.approval_policy.name())
            .map_err(McpError::Invalid)?;
        let bundled = Bundled {
            catalog_id: def.id.clone(),
            config: r.config,
        };
        self.close_slot(name).await;
        self.register(r.spec, bundled, r.secrets, r.missing, false)
            .await
    }

    /// The connection flow shared by `add`, `add_bundled` and `configure`.
    async fn register(
        &self,
        spec: ServerSpec,
        bundled: Bundled,
        secrets: BTreeMap<String, String>,
        missing: Vec<catalog::Field>,
        new: bool,
    ) -> Result<ServerView, McpError> {
        let name = spec.name.clone();
        let (n, s, b) = (name.clone(), spec.clone(), bundled.clone());
        let written = self
            .db
            .write(move |c| {
                if new == store::get(c, &n)?.is_some() {
                    return Ok(false);
                }
                store::put(c, &s, &b, ConnectionState::SelectService, "")?;
                Ok(true)
            })
            .await?;
        if !written {
            return Err(if new {
                McpError::Exists(name)
            } else {
                McpError::NoServer(name)
            });
        }
        if !missing.is_empty() {
            let detail = catalog::missing_text(&name, &missing);
            self.state(&name, ConnectionState::ConfigRequired, &detail)
                .await?;
            self.set_status(&name, Status::Stopped, &detail);
            return self.view(&name).await;
        }
        self.state(&name, ConnectionState::Authenticating, "")
            .await?;
        for (var, value) in &secrets {
            if let Err(e) = crate::secrets::put(&secret_name(&name, var), value) {
                let reason = format!("cannot keep {var} in the credential store: {e}");
                self.state(&name, ConnectionState::Authenticating, &reason)
                    .await?;
                self.set_status(&name, Status::Error, &reason);
                return Err(McpError::Invalid(reason));
            }
        }
        let _ = self.connect(&name).await;
        self.view(&name).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), McpError> {
        let n = name.to_owned();
        match self
            .db
            .write(move |c| store::set_enabled(c, &n, enabled))
            .await?
        {
            true => Ok(()),
            false => Err(McpError::NoServer(name.to_owned())),
        }
    }

    /// (Re)connect a server and mark it enabled.
    pub async fn connect(&self, name: &str) -> Result<ServerView, McpError> {
        self.set_enabled(name, true).await?;
        let slot = self.slot(name);
        let mut guard = slot.conn.lock().await;
        if let Some(old) = guard.take() {
            self.close(old).await;
        }
        match self.open(name).await {
            Ok(c) => {
                *guard = Some(c);
                drop(guard);
                self.view(name).await
            }
            Err(e) => Err(e),
        }
    }

    /// Close a server's connection and mark it disabled.
    pub async fn disconnect(&self, name: &str) -> Result<ServerView, McpError> {
        self.set_enabled(name, false).await?;
        self.close_slot(name).await;
        self.set_status(name, Status::Stopped, "");
        self.view(name).await
    }

    /// Disconnect and forget a server.
    pub async fn remove(&self, name: &str) -> Result<(), McpError> {
        let row = self.row(name).await?;
        // Off first, so no call reconnects it while it goes.
        self.set_enabled(name, false).await?;
        for var in row.spec.secret_names() {
            if let Err(e) = crate::secrets::delete(&secret_name(name, var)) {
                tracing::warn!(error = %e, server = name, "could not delete a secret");
            }
        }
        self.close_slot(name).await;
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(name);
        }
        let n = name.to_owned();
        self.db.write(move |c| store::remove(c, &n)).await?;
        Ok(())
    }
}
