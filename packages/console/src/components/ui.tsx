import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api.js";
import { linkHandler } from "../router.js";

export function Link(props: { to: string; children: ComponentChildren; class?: string; current?: boolean }) {
  return (
    <a href={props.to} class={props.class} onClick={linkHandler(props.to)} aria-current={props.current ? "page" : undefined}>
      {props.children}
    </a>
  );
}

/** An error as the API gave it: message, and what to do next. */
export function ErrorBox(props: { error: unknown; onDismiss?: () => void }) {
  if (!props.error) return null;
  const e = props.error;
  const message = e instanceof Error ? e.message : String(e);
  const hint = e instanceof ApiError ? e.hint : undefined;
  return (
    <div class="error" role="alert">
      <strong>{message}</strong>
      {hint && <div class="hint">{hint}</div>}
      {props.onDismiss && (
        <button class="link" type="button" onClick={props.onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}

export function CopyButton(props: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
    } catch {
      // Clipboard refused (no secure context): fall back to the old command on a temporary field.
      const ta = document.createElement("textarea");
      ta.value = props.text;
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return (
    <button type="button" class="small" onClick={copy} aria-label={`Copy ${props.label ?? ""}`.trim()}>
      {done ? "Copied" : "Copy"}
    </button>
  );
}

/** A secret shown in a monospace box with a copy button. */
export function Secret(props: { label: string; value: string; testid?: string }) {
  return (
    <div class="secret">
      <div class="secret-label">{props.label}</div>
      <div class="secret-row">
        <code data-testid={props.testid}>{props.value}</code>
        <CopyButton text={props.value} label={props.label} />
      </div>
    </div>
  );
}

/**
 * A modal (the browser's <dialog>: focus stays inside, Esc closes). `confirmText`
 * asks the user to type a word (the database's name) before the action is enabled.
 */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  action: string;
  danger?: boolean;
  confirmText?: string;
  onConfirm: () => Promise<void> | void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const ok = props.confirmText === undefined || typed === props.confirmText;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!ok || busy) return;
    setBusy(true);
    setError(undefined);
    try {
      await props.onConfirm();
      props.onClose();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} onClose={props.onClose} aria-labelledby="dialog-title">
      <form onSubmit={submit}>
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
        {props.confirmText !== undefined && (
          <label>
            Type <code>{props.confirmText}</code> to confirm
            <input value={typed} onInput={(e) => setTyped((e.target as HTMLInputElement).value)} autoFocus autocomplete="off" spellcheck={false} aria-label="Confirmation" />
          </label>
        )}
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={() => ref.current?.close()} disabled={busy}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? "danger" : "primary"} disabled={!ok || busy}>
            {busy ? "Working…" : props.action}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function StatusBadge(props: { status: string }) {
  return <span class={`badge badge-${props.status}`}>{props.status}</span>;
}

export function Spinner(props: { label?: string }) {
  return (
    <p class="muted" role="status">
      {props.label ?? "Loading…"}
    </p>
  );
}
