import { useCallback, useEffect, useState } from "preact/hooks";
import { branchesApi, databasesApi, type Database } from "../api.js";
import { Confirm, ErrorBox, formatTime, Link, Secret, Spinner, StatusBadge } from "../components/ui.js";
import { branchBody, type AtMode, type ExpiryMode } from "../lib/branches.js";

/** A database's branches: list, create (now, an instant or an LSN; optional expiry), and reset one to its parent. */
export function BranchesPanel(props: { db: Database; onChange: () => Promise<void> }) {
  const { db } = props;
  const [branches, setBranches] = useState<Database[] | undefined>();
  const [parent, setParent] = useState<Database | undefined>();
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<{ name: string; token: string; database_url: string } | undefined>();
  const [resetting, setResetting] = useState<Database | undefined>();
  const [done, setDone] = useState<string | undefined>();

  const load = useCallback(async () => {
    try {
      setBranches(await branchesApi.list(db.id));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, [db.id]);
  useEffect(() => {
    void load();
  }, [load]);
  useEffect(() => {
    if (db.parent_id) databasesApi.get(db.parent_id).then((r) => setParent(r.database), () => setParent(undefined));
  }, [db.parent_id]);

  return (
    <div class="panel">
      <ErrorBox error={error} />
      {done && (
        <p class="notice" role="status">
          {done}
        </p>
      )}
      {db.parent_id && (
        <section>
          <h2>This database is a branch</h2>
          <p>
            Branch of{" "}
            {parent ? <Link to={`/databases/${encodeURIComponent(parent.name)}/branches`}>{parent.name}</Link> : <code>{db.parent_id}</code>}, taken{" "}
            {formatTime(db.branched_at)}
            {db.branch_lsn ? ` (LSN ${db.branch_lsn})` : ""}. {db.expires_at ? `Expires ${formatTime(db.expires_at)}.` : "Does not expire."}
          </p>
          <button type="button" onClick={() => setResetting(db)}>
            Reset from parent…
          </button>
        </section>
      )}
      <h2>Branches of {db.name}</h2>
      {created && (
        <div class="notice" role="status">
          <p>
            Branch <strong>{created.name}</strong> is ready. Its HTTP token is shown only now.
          </p>
          <Secret label="Token" value={created.token} testid="branch-token" />
          <Secret label="DATABASE_URL" value={created.database_url} />
          <button type="button" class="link" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      {!branches && !error && <Spinner />}
      {branches?.length === 0 && <p class="muted">No branches yet.</p>}
      {branches && branches.length > 0 && (
        <div class="table-wrap">
          <table class="list" data-testid="branches">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Branched at</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {branches.map((b) => (
                <tr key={b.id}>
                  <td>
                    <Link to={`/databases/${encodeURIComponent(b.name)}`}>{b.name}</Link>
                    <div class="muted mono small-text">{b.id}</div>
                  </td>
                  <td data-label="Status">
                    <StatusBadge status={b.status} />
                  </td>
                  <td data-label="Branched at">
                    {formatTime(b.branched_at)}
                    {b.branch_lsn && <div class="muted mono small-text">{b.branch_lsn}</div>}
                  </td>
                  <td data-label="Expires">{b.expires_at ? formatTime(b.expires_at) : "never"}</td>
                  <td class="row-actions">
                    <Link to={`/databases/${encodeURIComponent(b.name)}/sql`}>SQL</Link>
                    <button type="button" class="small" aria-label={`Reset ${b.name} from ${db.name}`} onClick={() => setResetting(b)}>
                      Reset…
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <CreateBranchForm
        db={db}
        onCreated={(r) => {
          setCreated({ name: r.database.name, token: r.token, database_url: r.database_url });
          setDone(undefined);
          void load();
        }}
      />
      {resetting && (
        <Confirm
          title={`Reset ${resetting.name} from its parent?`}
          action="Reset branch"
          danger
          confirmText={resetting.name}
          onConfirm={async () => {
            await branchesApi.reset(resetting.id);
            setDone(`${resetting.name} now holds ${resetting.id === db.id ? (parent?.name ?? "its parent") : db.name}'s current data.`);
            if (resetting.id === db.id) await props.onChange();
            await load();
          }}
          onClose={() => setResetting(undefined)}
        >
          <p>
            All of <strong>{resetting.name}</strong>'s data is replaced by{" "}
            <strong>{resetting.id === db.id ? (parent?.name ?? resetting.parent_id) : db.name}</strong>'s current data: whatever was written on the branch since it was
            taken is lost, its open sessions are closed and its own backups are removed. Its id, host, token and password stay.
          </p>
        </Confirm>
      )}
    </div>
  );
}

function CreateBranchForm(props: { db: Database; onCreated: (r: { database: Database; token: string; database_url: string }) => void }) {
  const [name, setName] = useState("");
  const [atMode, setAtMode] = useState<AtMode>("now");
  const [at, setAt] = useState("");
  const [expiryMode, setExpiryMode] = useState<ExpiryMode>("none");
  const [expiry, setExpiry] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const body = branchBody({ name, atMode, at, expiryMode, expiry });
    if ("error" in body) {
      setError(new Error(body.error));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      props.onCreated(await branchesApi.create(props.db.id, body));
      setName("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const value = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLInputElement).value);
  return (
    <form class="card" onSubmit={submit} aria-labelledby="branch-title">
      <h2 id="branch-title">New branch</h2>
      <label>
        Branch name
        <input name="branch-name" value={name} onInput={value(setName)} required placeholder="pr-42" autocomplete="off" spellcheck={false} />
      </label>
      <label>
        Data as of
        <select value={atMode} onChange={(e) => setAtMode((e.target as HTMLSelectElement).value as AtMode)}>
          <option value="now">now</option>
          <option value="time">an earlier time</option>
          <option value="lsn">an LSN</option>
        </select>
      </label>
      {atMode === "time" && (
        <label>
          Instant (your local time)
          <input type="datetime-local" step="1" value={at} onInput={value(setAt)} required />
        </label>
      )}
      {atMode === "lsn" && (
        <label>
          LSN
          <input value={at} onInput={value(setAt)} required placeholder="0/3000060" autocomplete="off" spellcheck={false} />
        </label>
      )}
      <p class="muted small-text">An earlier time or LSN comes from {props.db.name}'s backups and archived WAL: it must be after its oldest kept backup.</p>
      <label>
        Expires
        <select value={expiryMode} onChange={(e) => setExpiryMode((e.target as HTMLSelectElement).value as ExpiryMode)}>
          <option value="none">never</option>
          <option value="ttl">after a lifetime</option>
          <option value="expires_at">at a time</option>
        </select>
      </label>
      {expiryMode === "ttl" && (
        <label>
          Lifetime
          <input value={expiry} onInput={value(setExpiry)} required placeholder="2h (90s, 30m, 2h, 7d)" autocomplete="off" spellcheck={false} />
        </label>
      )}
      {expiryMode === "expires_at" && (
        <label>
          Expires at (your local time)
          <input type="datetime-local" value={expiry} onInput={value(setExpiry)} required />
        </label>
      )}
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy || name.trim() === ""}>
          {busy ? "Branching…" : "Create branch"}
        </button>
      </div>
    </form>
  );
}
