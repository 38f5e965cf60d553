import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, databasesApi, type Database, type DatabaseStatus } from "../api.js";
import { Confirm, ErrorBox, formatBytes, formatTime, Link, Secret, Spinner, StatusBadge } from "../components/ui.js";
import { branchesFromConflict, branchesOf, branchOfLabel } from "../lib/branches.js";

interface Row {
  db: Database;
  status?: DatabaseStatus;
}

export function DatabasesPage() {
  const [rows, setRows] = useState<Row[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [creating, setCreating] = useState(false);
  const [destroying, setDestroying] = useState<Database | undefined>();
  /** The branches the destroy dialog named (from the list, or from the server's 409): only then is the destroy forced. */
  const [destroyBranches, setDestroyBranches] = useState<string[]>([]);
  const all = rows?.map((r) => r.db) ?? [];
  const askDestroy = (db: Database) => {
    setDestroyBranches(branchesOf(all, db.id).map((b) => b.name));
    setDestroying(db);
  };
  const [created, setCreated] = useState<{ name: string; token: string; database_url: string } | undefined>();

  const load = useCallback(async () => {
    try {
      const list = await databasesApi.list();
      // Live figures come per database, from ready ones only: asking a suspended one would wake it.
      const statuses = await Promise.all(list.map((db) => (db.status === "ready" ? databasesApi.status(db.id).catch(() => undefined) : undefined)));
      setRows(list.map((db, i) => ({ db, status: statuses[i] })));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void load();
    // Status, size and connections change under us (restarts, clients): refresh while the page is shown.
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void load();
    }, 10_000);
    return () => clearInterval(timer);
  }, [load]);

  return (
    <section>
      <div class="page-head">
        <h1>Databases</h1>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New database
        </button>
      </div>
      <ErrorBox error={error} />
      {created && (
        <div class="notice" role="status">
          <p>
            <strong>{created.name}</strong> is ready. Its HTTP token is shown only now: copy it somewhere safe (you can rotate it later).
          </p>
          <Secret label="Token" value={created.token} testid="new-token" />
          <Secret label="DATABASE_URL" value={created.database_url} />
          <button type="button" class="link" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      {creating && (
        <CreateForm
          onCancel={() => setCreating(false)}
          onCreated={(r) => {
            setCreating(false);
            setCreated({ name: r.database.name, token: r.token, database_url: r.database_url });
            void load();
          }}
        />
      )}
      {rows === undefined && !error && <Spinner />}
      {rows?.length === 0 && (
        <div class="empty">
          <p>No databases yet.</p>
          <p class="muted">
            Create one here, or with <code>ccp db create --name my-app-db</code>.
          </p>
        </div>
      )}
      {rows && rows.length > 0 && (
        <div class="table-wrap">
          <table class="list">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Size</th>
                <th scope="col">Connections</th>
                <th scope="col">Postgres</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ db, status }) => (
                <tr key={db.id}>
                  <td>
                    <Link to={`/databases/${db.name}`}>{db.name}</Link>
                    <div class="muted mono small-text">{db.id}</div>
                    {db.parent_id && (
                      <div class="muted small-text" data-testid="branch-of">
                        {branchOfLabel(db, all)}
                        {db.expires_at ? `, expires ${formatTime(db.expires_at)}` : ""}
                      </div>
                    )}
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={db.status} />
                    {db.suspend_after && db.suspend_after !== "never" && <div class="muted small-text">sleeps after {db.suspend_after} idle</div>}
                  </td>
                  <td data-label="Size">{formatBytes(status?.size_bytes)}</td>
                  <td data-label="Connections">
                    {status?.connections ?? "—"}
                    {status?.max_connections ? <span class="muted"> / {status.max_connections}</span> : null}
                  </td>
                  <td data-label="Postgres">{db.pg_version}</td>
                  <td class="row-actions">
                    <Link to={`/databases/${db.name}/sql`}>SQL</Link>
                    {(db.status === "ready" || db.status === "suspended") && (
                      <button
                        type="button"
                        class="small"
                        aria-label={`${db.status === "ready" ? "Suspend" : "Wake"} ${db.name}`}
                        onClick={() => void (db.status === "ready" ? databasesApi.suspend(db.id) : databasesApi.wake(db.id)).then(load, setError)}
                      >
                        {db.status === "ready" ? "Suspend" : "Wake"}
                      </button>
                    )}
                    <button type="button" class="small danger-outline" onClick={() => askDestroy(db)} aria-label={`Destroy ${db.name}`}>
                      Destroy
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {destroying && (
        <Confirm
          title={`Destroy ${destroying.name}?`}
          action="Destroy database"
          danger
          confirmText={destroying.name}
          onConfirm={async () => {
            try {
              await databasesApi.destroy(destroying.id, destroyBranches.length > 0);
            } catch (err) {
              // A branch made since the list was read: name it, and destroy only on a second, informed confirmation.
              const named = err instanceof ApiError && err.status === 409 ? branchesFromConflict(err.body, all) : [];
              if (named.length > 0) setDestroyBranches(named);
              throw err;
            }
            await load();
          }}
          onClose={() => setDestroying(undefined)}
        >
          <p>This stops its Postgres server and deletes all its data. Its backups go with it.</p>
          {destroyBranches.length > 0 && (
            <p data-testid="destroy-branches">
              It has {destroyBranches.length === 1 ? "a branch" : `${destroyBranches.length} branches`}: <strong>{destroyBranches.join(", ")}</strong>. They are not
              destroyed: they stay, as standalone databases.
            </p>
          )}
        </Confirm>
      )}
    </section>
  );
}

function CreateForm(props: { onCancel: () => void; onCreated: (r: { database: Database; token: string; database_url: string }) => void }) {
  const [name, setName] = useState("");
  const [owner, setOwner] = useState("");
  const [password, setPassword] = useState("");
  const [suspendAfter, setSuspendAfter] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onCreated(
        await databasesApi.create({ name: name.trim(), ...(owner ? { owner: owner.trim(), password } : {}), ...(suspendAfter.trim() ? { suspend_after: suspendAfter.trim() } : {}) }),
      );
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">New database</h2>
      <label>
        Name
        <input name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required autoFocus placeholder="my-app-db" autocomplete="off" spellcheck={false} aria-describedby="name-rules" />
      </label>
      <p id="name-rules" class="muted small-text">3–32 of a–z, 0–9, - and _, starting with a letter (with an owner: 3–16 of a–z, 0–9 and _).</p>
      <label>
        Suspend after idle (optional)
        <input name="suspend_after" value={suspendAfter} onInput={(e) => setSuspendAfter((e.target as HTMLInputElement).value)} placeholder="server default; e.g. 5m, 2h or never" autocomplete="off" spellcheck={false} />
      </label>
      <details>
        <summary>Owner role (optional, like ccp db provision -U)</summary>
        <label>
          Owner role
          <input name="owner" value={owner} onInput={(e) => setOwner((e.target as HTMLInputElement).value)} autocomplete="off" spellcheck={false} placeholder="app_owner" />
        </label>
        <label>
          Password of the owner (8 or more characters)
          <input type="password" name="password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} autocomplete="new-password" />
        </label>
      </details>
      <ErrorBox error={error} />
      <div class="actions">
        <button type="button" onClick={props.onCancel} disabled={busy}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy || name.trim() === ""}>
          {busy ? "Creating…" : "Create database"}
        </button>
      </div>
    </form>
  );
}
