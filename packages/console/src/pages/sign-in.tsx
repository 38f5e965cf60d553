import { useState } from "preact/hooks";
import { signIn } from "../api.js";
import { ErrorBox } from "../components/ui.js";

export function SignInPage(props: { onSignedIn: () => void }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(key);
      props.onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to ccp</h1>
        <p class="muted">
          Use this ccpd's admin API key. ccpd saved it on its first start in <code>~/.config/ccp/config.json</code> (<code>"token"</code>).
        </p>
        <label>
          Admin API key
          <input type="password" name="key" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} autoFocus required autocomplete="current-password" />
        </label>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || key.trim() === ""}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
