// The account box: who the server takes the planner to be (/auth/me: principal, roles, areas), an API key
// field, the organisation's sign-in when the server has an OIDC provider, and sign-out.
import { authConfig, AuthConfig, HttpError, Principal, whoAmI } from '../api';
import { currentCredential, forgetCredential, saveKey } from '../credential';
import { h } from '../dom';
import { t } from '../i18n';
import { completeOidcSignIn, startOidcSignIn } from '../oidc';

export interface StartingPrincipal {
  me: Principal;
  config: AuthConfig | null;
  /** Why the stored credential, or the provider's answer, was not taken: shown in the account box. */
  problem: string | null;
}

/**
 * Who the planner is at load: back from the identity provider, the code is exchanged first; then the
 * stored credential is asked about. One the server refuses (revoked, expired) is forgotten — a page whose
 * every request is a 401 helps nobody — and the planner starts signed out, saying why.
 */
export async function startingPrincipal(): Promise<StartingPrincipal> {
  const config = await authConfig().catch(() => null);
  let problem: string | null = null;
  try {
    await completeOidcSignIn(config?.oidc ?? null);
  } catch (error) {
    problem = String((error as Error)?.message ?? error);
  }
  try {
    return { me: await whoAmI(), config, problem };
  } catch (error) {
    if (!(error instanceof HttpError) || error.status !== 401 || !currentCredential()) throw error;
    forgetCredential();
    return { me: await whoAmI(), config, problem: error.detail };
  }
}

export class SignIn {
  readonly element = h('section', { class: 'account', 'data-test': 'account' });
  private message = h('p', { class: 'auth-message', role: 'alert', 'data-test': 'auth-message', hidden: true });
  private busy = false;

  constructor(
    private me: Principal,
    private readonly config: AuthConfig | null,
    /** The map, layer tree, search and table again, read with the new credential. */
    private readonly onChange: (me: Principal) => Promise<void>,
  ) {
    this.render();
  }

  get principal(): Principal {
    return this.me;
  }

  /** Why a sign-in did not work, in the server's words (the problem's `detail`). */
  showError(detail: string): void {
    this.message.textContent = `${t('signInFailed')}: ${detail}`;
    this.message.hidden = false;
  }

  /** A key is tried before it is kept: one the server refuses leaves the planner signed out, saying why. */
  async signIn(key: string): Promise<void> {
    const value = key.trim();
    if (!value || this.busy) return;
    this.busy = true;
    this.message.hidden = true;
    try {
      const me = await whoAmI({ scheme: 'key', value });
      saveKey(value);
      await this.changed(me);
    } catch (error) {
      this.showError(error instanceof HttpError ? error.detail : String((error as Error)?.message ?? error));
    } finally {
      this.busy = false;
    }
  }

  /** The credential was refused while in use (revoked, expired): forgotten, signed out, saying why. */
  async refused(detail: string): Promise<void> {
    forgetCredential();
    await this.changed(await whoAmI());
    this.showError(detail);
  }

  async signOut(): Promise<void> {
    forgetCredential();
    this.message.hidden = true;
    await this.changed(await whoAmI());
  }

  private async changed(me: Principal): Promise<void> {
    this.me = me;
    this.render();
    await this.onChange(me);
  }

  private render(): void {
    const me = this.me;
    const head = h('h2', {}, t('account'));
    if (me.signed_in) {
      this.element.replaceChildren(head,
        h('dl', { class: 'who' },
          h('dt', {}, t('signedInAs')), h('dd', { 'data-test': 'principal' }, me.principal),
          h('dt', {}, t('roles')), h('dd', { 'data-test': 'roles' }, me.roles.join(', ')),
          h('dt', {}, t('areas')), h('dd', { 'data-test': 'areas' }, me.areas.length ? me.areas.join(', ') : t('allAreas'))),
        h('button', { 'data-test': 'sign-out', onclick: () => void this.signOut() }, t('signOut')),
        this.message);
      return;
    }
    const input = h('input', { type: 'password', placeholder: t('apiKey'), 'aria-label': t('apiKey'), autocomplete: 'off', 'data-test': 'api-key' });
    const form = h('form', { class: 'key-form', onsubmit: (e: Event) => {
      e.preventDefault(); // never a navigation: the key would be in a URL
      void this.signIn(input.value);
    } }, input, h('button', { type: 'submit', 'data-test': 'sign-in' }, t('signIn')));
    const oidc = this.config?.oidc;
    const oidcButton = oidc ? h('button', { class: 'oidc', 'data-test': 'sign-in-oidc', onclick: () => {
      startOidcSignIn(oidc).catch((error) => this.showError(String(error?.message ?? error)));
    } }, t('signInOidc')) : null;
    this.element.replaceChildren(head, h('p', { class: 'signed-out', 'data-test': 'signed-out' }, t('signedOut')), form,
      ...(oidcButton ? [oidcButton] : []), this.message);
  }
}
