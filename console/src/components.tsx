import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { ApiError } from './api/client';
import { navigate } from './router';
import { formatTime as fmtTime, type SortDir } from './format';

/** Loads something, with the error kept for display where it happened. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
} {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: Error) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return { data, error, loading, reload: useCallback(() => setN((x) => x + 1), []) };
}

/** Runs an action; its error is shown next to the control that started it. */
export function useAction(): {
  busy: boolean;
  error: Error | undefined;
  run: (f: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const run = useCallback(async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
      return true;
    } catch (e) {
      setError(e as Error);
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}

export function ErrorNote({ error, what }: { error: Error | undefined; what?: string }) {
  if (!error) return null;
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : '';
  return (
    <p className="error" role="alert">
      {what ? <strong>{what} failed: </strong> : null}
      {error.message}
      {status}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="muted" aria-live="polite">Loading {what}…</p>;
}

export function Link({ href, children, className }: { href: string; children: ReactNode; className?: string }) {
  return (
    <a
      href={href}
      className={className}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

/** Copies `text`; says so for screen readers too. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<'' | 'ok' | 'fail'>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('ok');
    } catch {
      setDone('fail');
    }
    setTimeout(() => setDone(''), 2000);
  };
  return (
    <button type="button" className="small" onClick={copy} aria-label={`${label}: ${text}`}>
      {done === 'ok' ? 'Copied' : done === 'fail' ? 'Select and copy by hand' : label}
    </button>
  );
}

/** A command or digest in a code box with a copy button. */
export function CopyLine({ text, testId }: { text: string; testId?: string }) {
  return (
    <div className="copyline">
      <code data-testid={testId}>{text}</code>
      <CopyButton text={text} />
    </div>
  );
}

export function Pager({ page, pages, total, onPage, noun }: { page: number; pages: number; total: number; onPage: (p: number) => void; noun: string }) {
  if (total === 0) return null;
  return (
    <nav className="pager" aria-label={`${noun} pages`}>
      <button type="button" className="small" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        ← Previous
      </button>
      <span>
        Page {page} of {pages} · {total} {noun}
      </span>
      <button type="button" className="small" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        Next →
      </button>
    </nav>
  );
}

/** A column header that sorts; announces its state with aria-sort. */
export function SortHeader<K extends string>({ k, label, sort, onSort, className }: { k: K; label: string; sort: { key: K; dir: SortDir }; onSort: (s: { key: K; dir: SortDir }) => void; className?: string }) {
  const active = sort.key === k;
  return (
    <th aria-sort={active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'} className={className}>
      <button type="button" className="sort" onClick={() => onSort({ key: k, dir: active && sort.dir === 'asc' ? 'desc' : 'asc' })}>
        {label}
        <span aria-hidden="true">{active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</span>
      </button>
    </th>
  );
}

/**
 * A delete button that opens a modal dialog asking to type `name` first.
 * The native <dialog> traps focus and closes on Escape.
 */
export function ConfirmDelete({ name, what, onConfirm, label = 'Delete', consequence }: { name: string; what: string; onConfirm: () => Promise<unknown>; label?: string; consequence?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState('');
  const act = useAction();
  const id = useId();
  const open = () => {
    setTyped('');
    act.clear();
    ref.current?.showModal();
  };
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (typed !== name) return;
    if (await act.run(onConfirm)) ref.current?.close();
  };
  return (
    <>
      <button type="button" className="danger small" onClick={open} aria-label={`${label} ${what} ${name}`}>
        {label}
      </button>
      <dialog ref={ref} aria-labelledby={`${id}-t`}>
        <form onSubmit={submit}>
          <h3 id={`${id}-t`}>
            {label} {what} <code>{name}</code>?
          </h3>
          <p>{consequence ?? 'This cannot be undone.'}</p>
          <label htmlFor={`${id}-i`}>
            Type <strong>{name}</strong> to confirm
          </label>
          <input id={`${id}-i`} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} autoFocus />
          <ErrorNote error={act.error} what={`${label} ${what}`} />
          <div className="row">
            <button type="submit" className="danger" disabled={typed !== name || act.busy}>
              {act.busy ? 'Deleting…' : `${label} ${what}`}
            </button>
            <button type="button" onClick={() => ref.current?.close()}>
              Cancel
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}

export function Badge({ kind, children }: { kind: 'ok' | 'warn' | 'bad' | 'info' | 'plain'; children: ReactNode }) {
  return <span className={`badge ${kind}`}>{children}</span>;
}

export function Time({ at }: { at: string | null | undefined }) {
  return at ? <time dateTime={at} title={at}>{fmtTime(at)}</time> : <span className="muted">never</span>;
}

