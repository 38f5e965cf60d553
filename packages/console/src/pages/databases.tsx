import { useCallback, useEffect, useState } from "preact/hooks";
import { databasesApi, type Database, type DatabaseStatus } from "../api.js";
import { Confirm, ErrorBox, formatBytes, Link, Secret, Spinner, StatusBadge } from "../components/ui.js";

interface Row {
  db: Database;
  status?: DatabaseStatus;
}

export function DatabasesPage() {
  const [rows, setRows] = useState<Row[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [creating, setCreating] = useState(false);
  const [destroying, setDestroying] = useState<Database | undefined>();
  const [created, setCreated] = useState<{ name: string; token: string; database_url: string } | undefined>();

  const load = useCallback(async () => {
    try {
      const list = await databasesApi.list();
      // Live figures come per database; a stopped one answers with nulls.
      const statuses = await Promise.all(list.map((db) => databasesApi.status(db.id).catch(() => undefined)));
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
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={status?.state ?? db.status} />
                  </td>
                  <td data-label="Size">{formatBytes(status?.size_bytes)}</td>
                  <td data-label="Connections">
                    {status?.connections ?? "—"}
                    {status?.max_connections ? <span class="muted"> / {status.max_connections}</span> : null}
                  </td>
                  <td data-label="Postgres">{db.pg_version}</td>
                  <td class="row-actions">
                    <Link to={`/databases/${db.name}/sql`}>SQL</Link>
                    <button type="button" class="small danger-outline" onClick={() => setDestroying(db)} aria-label={`Destroy ${db.name}`}>
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
            await databasesApi.destroy(destroying.id);
            await load();
          }}
          onClose={() => setDestroying(undefined)}
        >
          <p>This stops its Postgres server and deletes all its data. Its backups go with it.</p>
        </Confirm>
      )}
    </section>
  );
}

function CreateForm(props: { onCancel: () => void; onCreated: (r: { database: Database; token: string; database_url: string }) => void }) {
  const [name, setName] = useState("");
  const [owner, setOwner] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onCreated(await databasesApi.create({ name: name.trim(), ...(owner ? { owner: owner.trim(), password } : {}) }));
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
