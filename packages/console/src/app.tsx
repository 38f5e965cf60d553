import { useEffect, useState } from "preact/hooks";
import { onUnauthorized, resumeSession, signOut } from "./api.js";
import { ErrorBox, Link, Spinner } from "./components/ui.js";
import { DatabasePage } from "./pages/database.js";
import { DatabasesPage } from "./pages/databases.js";
import { SignInPage } from "./pages/sign-in.js";
import { navigate, usePath } from "./router.js";

type Auth = "unknown" | "signed-in" | "signed-out";

export function App() {
  const [auth, setAuth] = useState<Auth>("unknown");
  const [error, setError] = useState<unknown>();
  const path = usePath();

  useEffect(() => {
    resumeSession()
      .then((s) => setAuth(s ? "signed-in" : "signed-out"))
      .catch((err: unknown) => {
        setError(err);
        setAuth("signed-out");
      });
    return onUnauthorized(() => setAuth("signed-out"));
  }, []);

  useEffect(() => {
    if (auth === "signed-in" && (path === "/" || path === "/sign-in")) navigate("/databases", true);
  }, [auth, path]);

  if (auth === "unknown") return <Spinner />;
  if (auth === "signed-out") {
    return (
      <>
        <ErrorBox error={error} />
        <SignInPage
          onSignedIn={() => {
            setError(undefined);
            setAuth("signed-in");
          }}
        />
      </>
    );
  }

  const doSignOut = async () => {
    try {
      await signOut();
    } catch (err) {
      setError(err);
    }
    setAuth("signed-out");
    navigate("/sign-in", true);
  };

  const m = /^\/databases\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(path);
  let page;
  if (path === "/" || path === "/sign-in") page = null; // the effect above moves on to /databases
  else if (path === "/databases" || path === "/databases/") page = <DatabasesPage />;
  else if (m?.[1]) page = <DatabasePage key={m[1]} dbRef={decodeURIComponent(m[1])} tab={m[2] ?? "overview"} />;
  else
    page = (
      <section class="empty">
        <h1>Not found</h1>
        <p>
          No console page at <code>{path}</code>. <Link to="/databases">Go to your databases</Link>.
        </p>
      </section>
    );

  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link to="/databases" class="brand">
          ccp
        </Link>
        <nav aria-label="Main">
          <Link to="/databases" current={path.startsWith("/databases")}>
            Databases
          </Link>
        </nav>
        <button type="button" class="link" onClick={doSignOut}>
          Sign out
        </button>
      </header>
      <ErrorBox error={error} onDismiss={() => setError(undefined)} />
      <main id="main">{page}</main>
    </div>
  );
}
