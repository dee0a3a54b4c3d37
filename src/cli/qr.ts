import type { QRCodeToStringOptions } from 'qrcode';

/**
 * The qrcode package, loaded when a code is drawn rather than when the CLI starts (it costs
 * several MiB of idle memory in a server that may never draw one). Same call as the package's.
 */
export const QRCode = {
  async toString(text: string, options: QRCodeToStringOptions): Promise<string> {
    return (await import('qrcode')).default.toString(text, options);
  },
};
