import { createContext, useCallback, useContext, useEffect, useState } from 'react';
import { api, call, signOut, type Me } from './api/client';
import { ErrorNote, Link, Loading } from './components';
import { hrefFor, useRoute, type Route } from './router';
import { SignIn } from './pages/SignIn';
import { Namespaces } from './pages/Namespaces';
import { NamespacePage } from './pages/Namespace';
import { RepositoryPage } from './pages/Repository';
import { Settings } from './pages/Settings';
import { Access } from './pages/Access';
import { Audit } from './pages/Audit';
import { Storage } from './pages/Storage';
import * as session from './session';

/** Who is signed in; `null` while signed out. */
export const MeContext = createContext<Me | null>(null);
export const useMe = () => useContext(MeContext);

type State = { kind: 'loading' } | { kind: 'signedOut'; reason?: string } | { kind: 'in'; me: Me } | { kind: 'error'; error: Error };

export function App() {
  const [state, setState] = useState<State>({ kind: 'loading' });
  const route = useRoute();

  const whoAmI = useCallback(async () => {
    try {
      const me = await call(api.GET('/api/v1/me'));
      setState({ kind: 'in', me });
    } catch (e) {
      const err = e as Error & { status?: number };
      if (err.status === 401) {
        session.save(null);
        setState({ kind: 'signedOut' });
      } else setState({ kind: 'error', error: err });
    }
  }, []);

  useEffect(() => {
    void whoAmI();
  }, [whoAmI]);

  if (state.kind === 'loading') return <main className="center"><Loading what="the console" /></main>;
  if (state.kind === 'error') {
    return (
      <main className="center">
        <h1>Berth</h1>
        <ErrorNote error={state.error} what="Asking the registry who you are" />
        <button type="button" onClick={() => void whoAmI()}>Try again</button>
      </main>
    );
  }
  if (state.kind === 'signedOut') return <SignIn reason={state.reason} onSignedIn={whoAmI} />;
  const me = state.me;
  const out = () => {
    signOut();
    setState({ kind: 'signedOut', reason: 'You are signed out.' });
  };
  return (
    <MeContext.Provider value={me}>
      <a href="#main" className="skip">Skip to content</a>
      <header className="top">
        <Link href="/" className="brand">
          <img src="/favicon.svg" alt="" width="24" height="24" /> Berth
        </Link>
        <nav aria-label="Main">
          <NavLink route={route} to={{ page: 'namespaces' }} label="Namespaces" />
          <NavLink route={route} to={{ page: 'storage' }} label="Storage" />
          {me.admin ? <NavLink route={route} to={{ page: 'settings' }} label="Settings" /> : null}
          <NavLink route={route} to={{ page: 'access' }} label={me.admin ? 'Users & tokens' : 'Tokens'} />
          {me.admin ? <NavLink route={route} to={{ page: 'audit' }} label="Audit log" /> : null}
        </nav>
        <div className="who">
          <span data-testid="whoami" title={`${me.kind}${me.admin ? ', registry administrator' : ''}`}>
            {me.kind === 'open' ? 'Authentication off' : me.name}
            {me.admin && me.kind !== 'open' ? ' (admin)' : ''}
          </span>
          {me.auth_mode === 'token' ? (
            <button type="button" className="small" onClick={out}>Sign out</button>
          ) : null}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </MeContext.Provider>
  );
}

function NavLink({ route, to, label }: { route: Route; to: Route; label: string }) {
  const current = route.page === to.page || (to.page === 'namespaces' && (route.page === 'namespace' || route.page === 'repository'));
  return (
    <span aria-current={current ? 'page' : undefined}>
      <Link href={hrefFor(to)}>{label}</Link>
    </span>
  );
}

function Page({ route }: { route: Route }) {
  useEffect(() => {
    const titles: Record<string, string> = { namespaces: 'Namespaces', settings: 'Settings', access: 'Access', audit: 'Audit log', storage: 'Storage' };
    const t = route.page === 'namespace' ? route.ns : route.page === 'repository' ? route.repo : titles[route.page] ?? 'Not found';
    document.title = `${t} · Berth`;
  }, [route]);
  switch (route.page) {
    case 'namespaces': return <Namespaces />;
    case 'namespace': return <NamespacePage ns={route.ns} />;
    case 'repository': return <RepositoryPage ns={route.ns} repo={route.repo} />;
    case 'settings': return <Settings />;
    case 'access': return <Access />;
    case 'audit': return <Audit />;
    case 'storage': return <Storage />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>Nothing in the console lives at <code>{route.path}</code>.</p>
          <Link href="/">Back to the namespaces</Link>
        </section>
      );
  }
}
