// A small history router: paths are the console's deep links.
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'namespaces' }
  | { page: 'namespace'; ns: string }
  | { page: 'repository'; ns: string; repo: string }
  | { page: 'settings' }
  | { page: 'access' }
  | { page: 'audit' }
  | { page: 'storage' }
  | { page: 'notfound'; path: string };

/** Path -> route. Repository names keep their slashes: `/ns/team/a/b` is `team/a/b`. */
export function parseRoute(path: string): Route {
  const seg = path
    .split('/')
    .filter((s) => s.length > 0)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  if (seg.length === 0) return { page: 'namespaces' };
  if (seg[0] === 'ns' && seg.length === 2) return { page: 'namespace', ns: seg[1] };
  if (seg[0] === 'ns' && seg.length > 2) return { page: 'repository', ns: seg[1], repo: seg.slice(1).join('/') };
  if (seg.length === 1 && ['settings', 'access', 'audit', 'storage'].includes(seg[0])) {
    return { page: seg[0] as 'settings' | 'access' | 'audit' | 'storage' };
  }
  return { page: 'notfound', path };
}

export function hrefFor(r: Route): string {
  switch (r.page) {
    case 'namespaces': return '/';
    case 'namespace': return `/ns/${encodeURIComponent(r.ns)}`;
    case 'repository': return `/ns/${r.repo.split('/').map(encodeURIComponent).join('/')}`;
    case 'notfound': return r.path;
    default: return `/${r.page}`;
  }
}

export function navigate(href: string): void {
  if (href === location.pathname) return;
  history.pushState(null, '', href);
  dispatchEvent(new PopStateEvent('popstate'));
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return parseRoute(path);
}
