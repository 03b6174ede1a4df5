using System.Runtime.CompilerServices;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

#pragma warning disable CA2012 // the tests hold ValueTasks to complete them in a chosen order; each is consumed once

public class FramePoolBuilderTests
{
    /// <summary>An awaitable that suspends its awaiter until <see cref="Release"/>, which resumes it inline.</summary>
    private sealed class Parked : ICriticalNotifyCompletion
    {
        private Action? _continuation;
        public bool IsCompleted { get; private set; }
        public Parked GetAwaiter() => this;
        public void GetResult() { }
        public void OnCompleted(Action continuation) => _continuation = continuation;
        public void UnsafeOnCompleted(Action continuation) => _continuation = continuation;
        public void Arm() => IsCompleted = false;

        public void Release()
        {
            IsCompleted = true;
            var continuation = _continuation;
            _continuation = null;
            continuation?.Invoke();
        }
    }

    private static readonly AsyncLocal<int> Flowing = new();

    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    private static async ValueTask<int> AddOneAfterAsync(Parked parked, int value)
    {
        await parked;
        return value + 1 + Flowing.Value;
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    private static async ValueTask FailAfterAsync(Parked? parked)
    {
        if (parked is not null) await parked;
        throw new InvalidOperationException("failed");
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    private static async ValueTask SetAfterAsync(Parked parked, StrongBox<int> into)
    {
        await parked;
        into.Value = 42;
    }

    [Fact]
    public async Task Results_Exceptions_AndTheExecutionContext_AreTheUsualOnes()
    {
        var parked = new Parked();
        Flowing.Value = 10;
        var pending = AddOneAfterAsync(parked, 1);
        Assert.False(pending.IsCompleted);
        Flowing.Value = 0; // the frame resumes in the context it captured
        parked.Release();
        Assert.Equal(12, await pending);

        var done = new Parked();
        done.Release();
        var completedAtOnce = AddOneAfterAsync(done, 1);
        Assert.True(completedAtOnce.IsCompletedSuccessfully);
        Assert.Equal(2, await completedAtOnce);

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await FailAfterAsync(null));
        var failing = new Parked();
        var failed = FailAfterAsync(failing);
        failing.Release();
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await failed);

        var into = new StrongBox<int>();
        var setting = new Parked();
        var set = SetAfterAsync(setting, into);
        setting.Release();
        await set;
        Assert.Equal(42, into.Value);
    }

    /// <summary>
    /// Frames suspended many at a time (as a loop's requests are) reuse their boxes: the runtime's pooling builder keeps
    /// one per thread and one per core, so it would allocate a box for most of these 64 frames every round.
    /// </summary>
    [Fact]
    public void ManyFramesInFlight_ReuseTheirBoxes()
    {
        const int InFlight = 64, Rounds = 50;
        var parked = Enumerable.Range(0, InFlight).Select(_ => new Parked()).ToArray();
        var pending = new ValueTask<int>[InFlight];
        int wrong = 0;
        Round(); // the boxes
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int r = 0; r < Rounds; r++) Round();
        long perFrame = (GC.GetAllocatedBytesForCurrentThread() - before) / (InFlight * Rounds);
        Assert.Equal(0, wrong);
#if DEBUG
        const long Bound = 100; // Debug state machines are classes, one per call (64 B here); the runtime's builder adds its box
#else
        const long Bound = 8;
#endif
        Assert.True(perFrame < Bound, $"{perFrame} B allocated per suspended frame");

        void Round()
        {
            for (int i = 0; i < InFlight; i++)
            {
                parked[i].Arm();
                pending[i] = AddOneAfterAsync(parked[i], i);
            }
            for (int i = 0; i < InFlight; i++) parked[i].Release();
            for (int i = 0; i < InFlight; i++)
                if (pending[i].Result != i + 1) wrong++; // counted, not asserted here: xunit's Assert.Equal allocates
        }
    }
}
