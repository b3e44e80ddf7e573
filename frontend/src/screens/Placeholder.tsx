import { PageHeader } from '../app/Shell';
import { useT, type MessageKey } from '../i18n';
import { Link } from '../lib/router';

/** A screen whose API is not built yet: says so plainly, and points to what works today. */
export function Placeholder({ title, what }: { title: MessageKey; what: MessageKey }) {
  const { t } = useT();
  return (
    <>
      <PageHeader title={t(title)} />
      <div className="panel placeholder">
        <span className="soon-tag soon-tag-large">{t('nav.soon')}</span>
        <p>{t(what)}</p>
        <p>
          {t('soon.meanwhile')} <Link to="/generate">{t('nav.generate')}</Link> · <Link to="/jobs">{t('nav.jobs')}</Link>
        </p>
      </div>
    </>
  );
}

export function NotFound() {
  const { t } = useT();
  return (
    <>
      <PageHeader title={t('notfound.title')} />
      <div className="panel placeholder">
        <p>{t('notfound.text')}</p>
        <Link to="/generate" className="btn btn-primary">
          {t('notfound.home')}
        </Link>
      </div>
    </>
  );
}
