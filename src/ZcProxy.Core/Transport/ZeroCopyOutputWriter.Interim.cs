using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Interim (1xx) response heads, sent straight to the socket before Kestrel writes the final head: Kestrel (.NET 10)
/// has no API for informational responses (dotnet/aspnetcore#27851), but this writer owns the socket. The only bytes
/// Kestrel may write while a request waits for its final response are its own "100 Continue" (when the forwarder
/// starts reading the request body), so sends are serialized with Kestrel's flushes by <see cref="_sendGate"/>: a
/// head and a flush never interleave. Kestrel's unflushed bytes stay buffered and follow.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001",
    Justification = "SemaphoreSlim holds nothing to dispose unless its AvailableWaitHandle is used, and _sendGate's never is.")]
internal sealed partial class ZeroCopyOutputWriter
{
    private readonly SemaphoreSlim _sendGate = new(1, 1);

    /// <summary>
    /// Sends a complete interim head. False when it was not sent: a hole is open, or the writer or connection is
    /// broken (then the connection has been aborted, as after any failed send).
    /// </summary>
    public async ValueTask<bool> SendInterimAsync(ReadOnlyMemory<byte> head, CancellationToken cancellationToken)
    {
        await _sendGate.WaitAsync(cancellationToken);
        try
        {
            if (!IsHealthy || _hole is not null) return false;
            while (!head.IsEmpty)
            {
                int sequence = _connection.ClientSocket.WriteSequence;
                SysResult result;
                if (!_connection.TryLeaseClient(out var client)) result = new SysResult(0, (int)Errno.EBADF);
                else using (client) result = Syscalls.Send(client.Fd, head.Span, MSG_DONTWAIT);
                if (result.Ok)
                {
                    head = head[(int)result.Bytes..];
                    continue;
                }
                if (!result.WouldBlock) throw ClientError(result.ToException("send"));
                await WaitWritableAsync(sequence, cancellationToken);
            }
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Kestrel cancelled pending flushes (connection ending): a head may be half sent, so nothing may follow it.
            Fault(new IOException("the connection ended while an interim response was sent"));
            return false;
        }
        catch (IOException e)
        {
            Fault(e);
            return false;
        }
        finally { _sendGate.Release(); }
    }
}
