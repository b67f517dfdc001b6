using System.Threading.Channels;

namespace FakeDapr;

/// <summary>One app's subscription to one topic: a queue and the loop that delivers from it, with retries and a dead-letter topic.</summary>
internal sealed class Subscription : IAsyncDisposable
{
    private readonly FakeDaprSidecar _sidecar;
    private readonly FakePubSub _broker;
    private readonly Channel<CloudEvent> _queue = Channel.CreateUnbounded<CloudEvent>();
    private readonly CancellationToken _stopping;
    private readonly SemaphoreSlim _inFlight;
    private readonly Task _loop;

    public Subscription(FakeDaprSidecar sidecar, FakePubSub broker, string pubSubName, string topic, string route, string? deadLetterTopic, CancellationToken stopping)
    {
        _sidecar = sidecar;
        _broker = broker;
        PubSubName = pubSubName;
        Topic = topic;
        Route = route;
        DeadLetterTopic = deadLetterTopic;
        _stopping = stopping;
        _inFlight = new SemaphoreSlim(broker.MaxConcurrency);
        _loop = Task.Run(RunAsync, CancellationToken.None);
    }

    public string PubSubName { get; }
    public string Topic { get; }
    public string Route { get; }
    public string? DeadLetterTopic { get; }

    public void Enqueue(CloudEvent message) => _queue.Writer.TryWrite(message);

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _inFlight.Dispose();
    }

    private async Task RunAsync()
    {
        while (await _queue.Reader.WaitToReadAsync(_stopping))
        {
            var behavior = _broker.BehaviorOf(Topic);
            if (behavior.ReverseWithin is { } window)
            {
                await Task.Delay(window, _stopping);
                var batch = new List<CloudEvent>();
                while (_queue.Reader.TryRead(out var message))
                {
                    batch.Add(message);
                    if (behavior.DeliverTwice)
                    {
                        batch.Add(message.Copy());
                    }
                }

                batch.Reverse();
                foreach (var message in batch)
                {
                    await DeliverAsync(message);
                }

                continue;
            }

            while (_queue.Reader.TryRead(out var message))
            {
                Start(message);
                if (behavior.DeliverTwice)
                {
                    Start(message.Copy());
                }
            }
        }
    }

    private void Start(CloudEvent message) => _ = Task.Run(
        async () =>
    {
        await _inFlight.WaitAsync(_stopping);
        try
        {
            await DeliverAsync(message);
        }
        finally
        {
            _inFlight.Release();
        }
    },
        CancellationToken.None);

    private async Task DeliverAsync(CloudEvent message)
    {
        for (var attempt = 1; !_stopping.IsCancellationRequested; attempt++)
        {
            DeliveryResult result;
            string detail;
            try
            {
                (result, detail) = await _sidecar.DeliverOnceAsync(Route, message, _stopping);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }

            // daprd sends a message to the dead-letter topic when the app drops it or it runs out of retries.
            var givenUp = result == DeliveryResult.Drop || (result == DeliveryResult.Retry && attempt >= _broker.MaxAttempts);
            if (givenUp && DeadLetterTopic is not null)
            {
                _sidecar.SendToDeadLetter(PubSubName, DeadLetterTopic, message);
            }

            // Recorded once acted on, so a test that sees the delivery also sees its consequence.
            _broker.Deliveries.Enqueue(new Delivery(_sidecar.AppId, Topic, message.Id, attempt, result, detail));
            if (result == DeliveryResult.Success || givenUp)
            {
                return;
            }

            try
            {
                await Task.Delay(_broker.RetryInterval, _stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
