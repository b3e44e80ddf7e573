// Names for the generated schema types, plus typed readers for the parts of the API the OpenAPI
// document leaves untyped (generation health's engines/workers/queue, WebSocket messages).
import type { components } from './schema';

type S = components['schemas'];
export type JobView = S['JobView'];
export type JobStatus = S['JobStatus'];
export type JobPage = S['JobPage'];
export type JobStats = S['JobStatsView'];
export type OutputView = S['OutputView'];
export type ImageRequest = S['ImageRequest'];
export type LoraRef = S['LoraRef'];
export type PriorityClass = S['PriorityClass'];
export type SubmitResponse = S['SubmitResponse'];
export type UserView = S['UserView'];
export type Role = S['Role'];
export type TokenResponse = S['TokenResponse'];
export type ApiKeyView = S['ApiKeyView'];
export type ApiKeyScope = S['ApiKeyScope'];
export type CreatedApiKey = S['CreatedApiKey'];
export type SystemHealth = S['SystemHealth'];
export type DependencyHealth = S['DependencyHealth'];
export type AuditView = S['AuditView'];
export type ModelView = S['ModelView'];
export type RescanReport = S['RescanReport'];
export type PersonaView = S['PersonaView'];
export type PersonaSpec = S['PersonaSpec'];
export type PersonaVersionView = S['PersonaVersionView'];
export type PersonaImageDefaults = S['ImageDefaults'];
export type MediaView = S['MediaView'];
export type MediaPage = S['MediaPage'];
export type MediaStats = S['MediaStatsView'];
export type BulkResponse = S['BulkResponse'];
export type ExportView = S['ExportView'];

export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'];
export const ACTIVE_STATUSES: readonly JobStatus[] = ['queued', 'running', 'retrying'];
export const isActive = (s: JobStatus): boolean => ACTIVE_STATUSES.includes(s);
export const isTerminal = (s: JobStatus): boolean => !isActive(s);

export interface EngineCapabilities {
  job_types: string[];
  max_images: number;
  max_size: number;
  min_size: number;
  max_steps: number;
  size_multiple: number;
  schedulers: string[];
  supports_loras: boolean;
  supports_negative_prompt: boolean;
  /** Whether the engine can start from an image (`init_image`, `strength`). */
  supports_img2img: boolean;
}

export interface EngineModel {
  name: string;
  description: string;
}

export interface EngineInfo {
  name: string;
  state: string;
  workers: number;
  models: EngineModel[];
  capabilities: EngineCapabilities;
}

export interface WorkerInfo {
  id: string;
  name: string;
  host: string;
  status: string;
  version: string;
  concurrency: number;
  engines: string[];
  heartbeat_age_secs: number | null;
  started_at: string | null;
  current_jobs: unknown[];
}

export interface QueueInfo {
  interactive: number;
  batch: number;
  running: number;
  oldest_queued_age_secs: number | null;
}

export interface GenerationHealth {
  status: string;
  engines: EngineInfo[];
  workers: WorkerInfo[];
  queue: QueueInfo;
}

const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);
const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const bool = (v: unknown): boolean => v === true;
const strs = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === 'string');

/** Reads `GET /api/generation/health` defensively (the spec types its parts as `any`). */
export function parseGenerationHealth(raw: unknown): GenerationHealth {
  const r = obj(raw);
  const engines = arr(r.engines).map((e): EngineInfo => {
    const o = obj(e);
    const c = obj(o.capabilities);
    return {
      name: str(o.name),
      state: str(o.state, 'unknown'),
      workers: num(o.workers),
      models: arr(o.models).map((m) => ({ name: str(obj(m).name), description: str(obj(m).description) })),
      capabilities: {
        job_types: strs(c.job_types),
        max_images: num(c.max_images, 1),
        max_size: num(c.max_size, 2048),
        min_size: num(c.min_size, 64),
        max_steps: num(c.max_steps, 150),
        size_multiple: num(c.size_multiple, 8) || 8,
        schedulers: strs(c.schedulers),
        supports_loras: bool(c.supports_loras),
        supports_negative_prompt: c.supports_negative_prompt === undefined ? true : bool(c.supports_negative_prompt),
        supports_img2img: bool(c.supports_img2img),
      },
    };
  });
  const workers = arr(r.workers).map((w): WorkerInfo => {
    const o = obj(w);
    return {
      id: str(o.id),
      name: str(o.name),
      host: str(o.host),
      status: str(o.status, 'unknown'),
      version: str(o.version),
      concurrency: num(o.concurrency),
      engines: strs(o.engines),
      heartbeat_age_secs: numOrNull(o.heartbeat_age_secs),
      started_at: typeof o.started_at === 'string' ? o.started_at : null,
      current_jobs: arr(o.current_jobs),
    };
  });
  const q = obj(r.queue);
  return {
    status: str(r.status, 'unknown'),
    engines,
    workers,
    queue: {
      interactive: num(q.interactive),
      batch: num(q.batch),
      running: num(q.running),
      oldest_queued_age_secs: numOrNull(q.oldest_queued_age_secs),
    },
  };
}

export type NotificationView = S['NotificationView'];
export type NotificationPage = S['NotificationPage'];
export type UserSettings = S['UserSettings'];
export type NotificationPrefs = S['NotificationPrefs'];
export type Channels = S['Channels'];
export type WebhookView = S['WebhookView'];
export type DeliveryView = S['DeliveryView'];
export type ContentPolicyView = S['ContentPolicyView'];
export type BlockedCategory = S['BlockedCategory'];
export type Applies = S['Applies'];

/** A JSON merge patch of the user settings (the OpenAPI document types the body as a bare object). */
export interface SettingsPatch {
  theme?: string;
  language?: string;
  notifications?: Partial<Record<keyof NotificationPrefs, Partial<Channels>>>;
  content?: Partial<UserSettings['content']>;
}

/** The `notification` event of the WebSocket's `notifications` channel, read defensively. */
export function readNotificationEvent(message: { type: string; [key: string]: unknown }): NotificationView | null {
  if (message.type !== 'notification' || message.channel !== 'notifications') return null;
  const d = message.data as Partial<NotificationView> | null | undefined;
  if (!d || typeof d.id !== 'string' || typeof d.title !== 'string' || typeof d.created_at !== 'string') return null;
  return {
    id: d.id,
    level: typeof d.level === 'string' ? d.level : 'info',
    category: typeof d.category === 'string' ? d.category : 'system',
    title: d.title,
    body: typeof d.body === 'string' ? d.body : '',
    link: typeof d.link === 'string' ? d.link : null,
    read: d.read === true,
    read_at: typeof d.read_at === 'string' ? d.read_at : null,
    created_at: d.created_at,
  };
}
