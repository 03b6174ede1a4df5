using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>The connection's ConnectionClosed and the grace's close request: a source only when asked for, cancelled exactly right.</summary>
public class OnDemandCancellationTests
{
    private sealed class Holder
    {
        public OnDemandCancellation Signal;
    }

    [Fact]
    public void NotAskedFor_HoldsNoSource_EvenAfterCancel()
    {
        var holder = new Holder();
        Assert.False(holder.Signal.HasSource);

        holder.Signal.Cancel();

        Assert.False(holder.Signal.HasSource);
        Assert.True(holder.Signal.IsCancelled);
    }

    [Fact]
    public void AskedForBeforeCancel_IsCancelledByIt_CallbackOnce()
    {
        var holder = new Holder();
        var token = holder.Signal.Token;
        int calls = 0;
        using var registration = token.Register(() => Interlocked.Increment(ref calls));
        Assert.True(holder.Signal.HasSource);
        Assert.False(token.IsCancellationRequested);

        holder.Signal.Cancel();
        holder.Signal.Cancel();

        Assert.True(token.IsCancellationRequested);
        Assert.Equal(1, calls);
        Assert.Equal(token, holder.Signal.Token); // one source: the same token every time
    }

    [Fact]
    public void AskedForAfterCancel_IsAlreadyCancelled_CallbackRunsOnceAtRegistration()
    {
        var holder = new Holder();
        holder.Signal.Cancel();

        var token = holder.Signal.Token;
        int calls = 0;
        using var registration = token.Register(() => Interlocked.Increment(ref calls));
        holder.Signal.Cancel();

        Assert.True(token.IsCancellationRequested);
        Assert.Equal(1, calls);
    }

    [Fact]
    public void SourceMadeByTheAsk_ThenCancelled_IsTheSameTokensSource()
    {
        var holder = new Holder();
        var before = holder.Signal.Token;
        holder.Signal.Cancel();
        var after = holder.Signal.Token;

        Assert.Equal(before, after);
        Assert.True(after.IsCancellationRequested);
    }

    /// <summary>
    /// Asks and cancels racing on two threads: whichever comes first, the token ends cancelled and a callback registered
    /// on it runs exactly once (a Cancel that saw no source and an ask that missed the flag would leave it uncancelled).
    /// </summary>
    [Fact]
    public async Task AskRacingCancel_TokenAlwaysEndsCancelled_CallbackOnce()
    {
        for (int round = 0; round < 5_000; round++)
        {
            var holder = new Holder();
            using var start = new Barrier(2);
            int calls = 0;
            CancellationToken token = default;
            var asker = Task.Run(() =>
            {
                start.SignalAndWait();
                token = holder.Signal.Token;
                token.UnsafeRegister(_ => Interlocked.Increment(ref calls), null);
            });
            var canceller = Task.Run(() =>
            {
                start.SignalAndWait();
                holder.Signal.Cancel();
            });
            await Task.WhenAll(asker, canceller);

            Assert.True(token.IsCancellationRequested, $"round {round}: the token asked for while cancelling was left uncancelled");
            Assert.Equal(1, Volatile.Read(ref calls));
        }
    }
}
