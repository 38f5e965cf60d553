import { useCallback, useEffect, useState } from "preact/hooks";
import { databasesApi, type Database, type DatabaseStatus } from "../api.js";
import { Confirm, CopyButton, ErrorBox, formatBytes, formatTime, Link, Secret, Spinner, StatusBadge } from "../components/ui.js";
import { BackupsPanel } from "./backups.js";
import { BranchesPanel } from "./branches.js";
import { MonitoringPanel } from "./monitoring.js";
import { SqlEditor } from "./sql-editor.js";
import { TablesPanel } from "./tables.js";

const TABS = [
  { id: "overview", label: "Overview" },
  { id: "sql", label: "SQL editor" },
  { id: "tables", label: "Tables" },
  { id: "backups", label: "Backups" },
  { id: "branches", label: "Branches" },
  { id: "monitoring", label: "Monitoring" },
] as const;

export function DatabasePage(props: { dbRef: string; tab: string }) {
  const [db, setDb] = useState<Database | undefined>();
  const [error, setError] = useState<unknown>();
  const load = useCallback(async () => {
    try {
      setDb((await databasesApi.get(props.dbRef)).database);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [props.dbRef]);
  useEffect(() => {
    void load();
  }, [load]);

  const base = `/databases/${encodeURIComponent(props.dbRef)}`;
  const tab = TABS.find((t) => t.id === props.tab) ?? TABS[0];
  return (
    <section>
      <div class="page-head">
        <h1>
          <Link to="/databases" class="crumb">
            Databases
          </Link>{" "}
          / {db?.name ?? props.dbRef}
        </h1>
        {db && <StatusBadge status={db.status} />}
      </div>
      <nav class="tabs" aria-label="Database">
        {TABS.map((t) => (
          <Link key={t.id} to={t.id === "overview" ? base : `${base}/${t.id}`} current={t.id === tab.id} class="tab">
            {t.label}
          </Link>
        ))}
      </nav>
      <ErrorBox error={error} />
      {!db && !error && <Spinner />}
      {db && tab.id === "overview" && <Overview db={db} onChange={load} />}
      {db && tab.id === "sql" && <SqlEditor db={db} />}
      {db && tab.id === "tables" && <TablesPanel db={db} />}
      {db && tab.id === "backups" && <BackupsPanel db={db} onChange={load} />}
      {db && tab.id === "branches" && <BranchesPanel db={db} onChange={load} />}
      {db && tab.id === "monitoring" && <MonitoringPanel db={db} />}
    </section>
  );
}

function Overview(props: { db: Database; onChange: () => Promise<void> }) {
  const { db } = props;
  const [status, setStatus] = useState<DatabaseStatus | undefined>();
  const [url, setUrl] = useState<string | undefined>();
  const [token, setToken] = useState<string | undefined>();
  const [error, setError] = useState<unknown>();
  const [dialog, setDialog] = useState<"rotate" | "password" | undefined>();
  const [password, setPassword] = useState("");
  const [password2, setPassword2] = useState("");

  useEffect(() => {
    // Asking a suspended database for its figures would wake it: only on request.
    if (db.status === "ready") databasesApi.status(db.id).then(setStatus, setError);
    else setStatus(undefined);
  }, [db.id, db.status]);

  const reveal = async () => {
    try {
      setUrl((await databasesApi.get(db.id, true)).database_url);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div class="panel">
      <ErrorBox error={error} />
      <h2>Connection</h2>
      <dl class="facts">
        <dt>Host</dt>
        <dd>
          <code>{db.host}</code> <CopyButton text={db.host} label="host" />
        </dd>
        <dt>Database</dt>
        <dd>
          <code>{db.database}</code>
        </dd>
        <dt>User</dt>
        <dd>
          <code>{db.user}</code>
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{db.id}</code>
        </dd>
        {db.parent_id && (
          <>
            <dt>Branch of</dt>
            <dd data-testid="branch-of">
              <ParentLink id={db.parent_id} /> at {formatTime(db.branched_at)}
              {db.branch_lsn ? <span class="muted"> (LSN {db.branch_lsn})</span> : null}
            </dd>
            <dt>Expires</dt>
            <dd>{db.expires_at ? formatTime(db.expires_at) : "never"}</dd>
          </>
        )}
      </dl>
      <div class="secret-block">
        {url ? (
          <Secret label="DATABASE_URL" value={url} testid="database-url" />
        ) : (
          <button type="button" onClick={reveal}>
            Reveal DATABASE_URL
          </button>
        )}
      </div>
      <div class="secret-block">
        {token ? (
          <>
            <Secret label="New HTTP token (shown only now)" value={token} testid="token" />
            <p class="muted small-text">The previous token no longer works.</p>
          </>
        ) : (
          <p class="muted small-text">
            The HTTP token (for <code>/query</code> and <code>@ccp/client</code>) is kept only as a hash, so it cannot be shown again: rotate it to get a new one.
          </p>
        )}
        <div class="actions left">
          <button type="button" onClick={() => setDialog("rotate")}>
            Rotate token…
          </button>
          <button type="button" onClick={() => setDialog("password")}>
            Reset password…
          </button>
        </div>
      </div>

      <h2>Status</h2>
      {db.status === "suspended" && (
        <p class="muted">
          Suspended: its Postgres is stopped until a connection, a query or Wake brings it back.{" "}
          <button type="button" class="small" onClick={() => void databasesApi.wake(db.id).then(props.onChange, setError)}>
            Wake now
          </button>
        </p>
      )}
      {db.status !== "ready" && db.status !== "suspended" && <p class="muted">No live figures while the database is {db.status}.</p>}
      {db.status !== "ready" ? null : !status ? (
        <Spinner />
      ) : (
        <dl class="facts">
          <dt>State</dt>
          <dd>
            <StatusBadge status={status.state} />
          </dd>
          <dt>Postgres</dt>
          <dd>{status.pg_version}</dd>
          <dt>Size</dt>
          <dd>{formatBytes(status.size_bytes)}</dd>
          <dt>Connections</dt>
          <dd>
            {status.connections ?? "—"}
            {status.max_connections ? ` of ${status.max_connections}` : ""}
          </dd>
          <dt>Started</dt>
          <dd>{formatTime(status.started_at)}</dd>
          <dt>Restarts</dt>
          <dd>{db.restarts}</dd>
          <dt>Suspends after</dt>
          <dd>
            {db.suspend_after ?? "—"} idle{db.last_active_at ? ` (last active ${formatTime(db.last_active_at)})` : ""}{" "}
            {(db.status === "ready" || db.status === "suspended") && (
              <button
                type="button"
                class="small"
                onClick={() =>
                  void (db.status === "ready" ? databasesApi.suspend(db.id) : databasesApi.wake(db.id)).then(props.onChange, setError)
                }
              >
                {db.status === "ready" ? "Suspend now" : "Wake now"}
              </button>
            )}
          </dd>
          <dt>Last backup</dt>
          <dd>{status.last_backup_at ? formatTime(status.last_backup_at) : "none yet"}</dd>
          <dt>Databases inside</dt>
          <dd>{(status.databases ?? []).join(", ") || "—"}</dd>
        </dl>
      )}

      {dialog === "rotate" && (
        <Confirm
          title="Rotate the HTTP token?"
          action="Rotate token"
          onConfirm={async () => {
            setToken((await databasesApi.rotateToken(db.id)).token);
          }}
          onClose={() => setDialog(undefined)}
        >
          <p>A new token is issued; the current one is refused from the next request on. Apps using it need the new one.</p>
        </Confirm>
      )}
      {dialog === "password" && (
        <Confirm
          title="Reset the wire password"
          action="Set password"
          onConfirm={async () => {
            if (password !== password2) throw new Error("The two passwords differ; type the same one twice.");
            setUrl((await databasesApi.resetPassword(db.id, password)).database_url);
            setPassword("");
            setPassword2("");
          }}
          onClose={() => setDialog(undefined)}
        >
          <p>Open sessions stay open; new connections need the new password.</p>
          <label>
            New password (8 or more characters)
            <input type="password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} autoFocus autocomplete="new-password" />
          </label>
          <label>
            Again
            <input type="password" value={password2} onInput={(e) => setPassword2((e.target as HTMLInputElement).value)} autocomplete="new-password" />
          </label>
        </Confirm>
      )}
    </div>
  );
}

/** The parent's name, linked to its page (its id when it is gone). */
function ParentLink(props: { id: string }) {
  const [name, setName] = useState<string | undefined>();
  useEffect(() => {
    databasesApi.get(props.id).then((r) => setName(r.database.name), () => setName(undefined));
  }, [props.id]);
  return name ? <Link to={`/databases/${encodeURIComponent(name)}`}>{name}</Link> : <code>{props.id}</code>;
}
