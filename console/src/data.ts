// Fetches that walk every page of a list (the API pages by at most 100),
// so that the console can sort and filter on every column.
import { api, call, type Namespace, type Repository } from './api/client';

const MAX_PAGES = 100;

export async function allNamespaces(): Promise<Namespace[]> {
  const out: Namespace[] = [];
  for (let page = 1; page <= MAX_PAGES; page++) {
    const r = await call(api.GET('/api/v1/namespaces', { params: { query: { page, page_size: 100, order_by: 'name_asc' } } }));
    out.push(...r.namespaces);
    if (out.length >= r.total_count || r.namespaces.length === 0) break;
  }
  return out;
}

export async function allRepositories(ns: string): Promise<Repository[]> {
  const out: Repository[] = [];
  for (let page = 1; page <= MAX_PAGES; page++) {
    const r = await call(api.GET('/api/v1/namespaces/{namespace}/repositories', { params: { path: { namespace: ns }, query: { page, page_size: 100 } } }));
    out.push(...r.repositories);
    if (out.length >= r.total_count || r.repositories.length === 0) break;
  }
  return out;
}
