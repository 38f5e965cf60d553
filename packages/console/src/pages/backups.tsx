import { useCallback, useEffect, useState } from "preact/hooks";
import { backupsApi, type Backup, type Database } from "../api.js";
import { Confirm, ErrorBox, formatBytes, formatTime, Spinner, StatusBadge } from "../components/ui.js";
import { navigate } from "../router.js";

/** `datetime-local` wants local time without a zone, to the second. */
function localInputValue(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function BackupsPanel(props: { db: Database; onChange: () => Promise<void> }) {
  const { db } = props;
  const [backups, setBackups] = useState<Backup[] | undefined>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState<string | undefined>();
  const [notice, setNotice] = useState<string | undefined>();
  const [restoring, setRestoring] = useState<Backup | undefined>();
  const [deleting, setDeleting] = useState<Backup | undefined>();
  const [pitrTime, setPitrTime] = useState(() => localInputValue(new Date()));
  /** "Now" keeps the exact instant: the picker shows whole seconds, which would drop what happened within the last one. */
  const [pitrExact, setPitrExact] = useState<Date | undefined>();
  const [pitrName, setPitrName] = useState(`${db.name}-restored`.slice(0, 32));

  const load = useCallback(async () => {
    try {
      setBackups(await backupsApi.list(db.id));
    } catch (err) {
      setError(err);
    }
  }, [db.id]);
  useEffect(() => {
    void load();
  }, [load]);

  const act = async (label: string, fn: () => Promise<string | void>) => {
    setBusy(label);
    setError(undefined);
    setNotice(undefined);
    try {
      const msg = await fn();
      if (msg) setNotice(msg);
      await load();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <div class="panel">
      <div class="page-head">
        <h2>Backups</h2>
        <button type="button" class="primary" disabled={!!busy} onClick={() => void act("create", async () => `Backup ${(await backupsApi.create(db.id)).id} taken.`)}>
          {busy === "create" ? "Taking backup…" : "Take backup now"}
        </button>
      </div>
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
      {busy && busy !== "create" && <p role="status">{busy}…</p>}
      {notice && (
        <p class="ok" role="status">
          {notice}
        </p>
      )}
      {!backups && !error && <Spinner />}
      {backups?.length === 0 && <p class="empty muted">No backups yet. ccpd takes one daily; take one now with the button above.</p>}
      {backups && backups.length > 0 && (
        <div class="table-wrap">
          <table class="list" data-testid="backups">
            <thead>
              <tr>
                <th scope="col">Backup</th>
                <th scope="col">Taken</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Size</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {backups.map((b) => (
                <tr key={b.id}>
                  <td>
                    <code>{b.id}</code>
                  </td>
                  <td data-label="Taken">{formatTime(b.created_at)}</td>
                  <td data-label="Kind">{b.kind}</td>
                  <td data-label="Status">
                    <StatusBadge status={b.status} />
                  </td>
                  <td data-label="Size">{formatBytes(b.size_bytes)}</td>
                  <td class="row-actions">
                    <button
                      type="button"
                      class="small"
                      disabled={!!busy}
                      onClick={() =>
                        void act(`Verifying ${b.id}`, async () => {
                          const v = await backupsApi.verify(db.id, b.id);
                          return `Backup ${b.id} verified: ${v.files} files, ${formatBytes(v.bytes)}, and Postgres started from it.`;
                        })
                      }
                    >
                      Verify
                    </button>
                    <button type="button" class="small" disabled={!!busy} onClick={() => setRestoring(b)}>
                      Restore…
                    </button>
                    <button type="button" class="small danger-outline" disabled={!!busy} onClick={() => setDeleting(b)} aria-label={`Delete backup ${b.id}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Point-in-time restore</h2>
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          const when = pitrExact ?? new Date(pitrTime);
          if (Number.isNaN(when.getTime())) {
            setError(new Error("Pick a date and time to restore to."));
            return;
          }
          void act(`Restoring ${db.name} as of ${when.toLocaleString()} into ${pitrName}`, async () => {
            await backupsApi.pitr(db.id, when.toISOString(), pitrName.trim());
            navigate(`/databases/${encodeURIComponent(pitrName.trim())}`);
          });
        }}
      >
        <p class="muted small-text">Creates a NEW database with this one's data as it was at that moment; this database is untouched.</p>
        <label>
          Restore to (your local time)
          <span class="time-row">
            <input type="datetime-local" step="1" value={pitrTime} onInput={(e) => {
                setPitrTime((e.target as HTMLInputElement).value);
                setPitrExact(undefined);
              }}
              required
            />
            <button type="button" class="small" aria-label="Set the time to now" onClick={() => {
                const now = new Date();
                setPitrTime(localInputValue(now));
                setPitrExact(now);
              }}
            >
              Now
            </button>
          </span>
        </label>
        <label>
          Name of the new database
          <input value={pitrName} onInput={(e) => setPitrName((e.target as HTMLInputElement).value)} required spellcheck={false} autocomplete="off" />
        </label>
        <div class="actions left">
          <button type="submit" disabled={!!busy}>
            Restore into a new database
          </button>
        </div>
      </form>

      {restoring && (
        <Confirm
          title={`Restore ${db.name} from ${restoring.id}?`}
          action="Restore"
          danger
          confirmText={db.name}
          onConfirm={async () => {
            await backupsApi.restore(db.id, restoring.id);
            setNotice(`Restored ${db.name} from ${restoring.id} (taken ${formatTime(restoring.created_at)}).`);
            await Promise.all([load(), props.onChange()]);
          }}
          onClose={() => setRestoring(undefined)}
        >
          <p>
            This replaces ALL of {db.name}'s current data with the backup's, taken {formatTime(restoring.created_at)}. Changes made since are lost. The id, host and token stay; open
            connections are closed.
          </p>
        </Confirm>
      )}
      {deleting && (
        <Confirm
          title={`Delete backup ${deleting.id}?`}
          action="Delete backup"
          danger
          onConfirm={async () => {
            await backupsApi.remove(db.id, deleting.id);
            await load();
          }}
          onClose={() => setDeleting(undefined)}
        >
          <p>The backup taken {formatTime(deleting.created_at)} is deleted for good.</p>
        </Confirm>
      )}
    </div>
  );
}
