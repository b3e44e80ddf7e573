// Multipart upload to /api/media/uploads (the typed client speaks JSON only).
import { errorFrom } from '../../api/client';
import type { MediaView } from '../../api/types';

export async function uploadFiles(files: readonly File[], tags: string, token: string | null): Promise<MediaView[]> {
  const body = new FormData();
  for (const f of files) body.append('file', f, f.name);
  if (tags.trim()) body.append('tags', tags.trim());
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch('/api/media/uploads', { method: 'POST', headers, body });
  if (!res.ok) throw await errorFrom(res);
  const json = (await res.json()) as { items: MediaView[] };
  return json.items;
}
