import { expect } from 'chai';
import { hitlEventKey } from '../src/db/hitl.ts';
import { checkAnswer, InvalidHitlAnswerError } from '../src/sdk/hitl.ts';
import { HITLTrigger } from '../triggers/hitl-trigger.ts';

describe('HITL answers and trigger kwargs', () => {
  const request = { options: ['eu', 'us', 'apac'], params: { reason: '', budget: 100, extra: null }, multiple: false };

  it('an answer gets the defaults of the params not given; a repeated option counts once', () => {
    expect(checkAnswer(request, ['us', 'us'], { budget: 5 })).to.deep.equal({ chosenOptions: ['us'], paramsInput: { reason: '', budget: 5, extra: null } });
    expect(checkAnswer(request, ['eu'], { extra: { any: ['json'] } }).paramsInput['extra']).to.deep.equal({ any: ['json'] });
    expect(checkAnswer({ ...request, multiple: true }, ['eu', 'apac'], {}).chosenOptions).to.deep.equal(['eu', 'apac']);
  });

  it('refuses no option, an unknown option, several without multiple, an unknown param, a param of another type', () => {
    const refused = (chosen: string[], params = {}) => expect(() => checkAnswer(request, chosen, params)).to.throw(InvalidHitlAnswerError);
    refused([]);
    expect(() => checkAnswer(request, ['mars'], {})).to.throw(/option "mars" is not one of "eu", "us", "apac"/);
    expect(() => checkAnswer(request, ['eu', 'us'], {})).to.throw(/this request takes one option, got 2/);
    expect(() => checkAnswer(request, ['eu'], { colour: 'red' })).to.throw(/param 'colour' is not asked for: the params are budget, extra, reason/);
    expect(() => checkAnswer(request, ['eu'], { budget: 'lots' })).to.throw(/param 'budget' must be a JSON number \(as its default\), got a string/);
    refused(['eu'], { reason: 3 });
  });

  it('the event key is the task instance key, or the request id when that is too long for an event key', () => {
    expect(hitlEventKey({ dagId: 'd', runId: 'r', taskId: 't' }, 7)).to.equal('hitl:d/r/t');
    expect(hitlEventKey({ dagId: 'd', runId: 'r', taskId: 't', mapIndex: 2 }, 7)).to.equal('hitl:d/r/t[2]');
    expect(hitlEventKey({ dagId: 'd'.repeat(200), runId: 'r'.repeat(60), taskId: 't' }, 7)).to.equal('hitl:#7');
  });

  it('HITLTrigger kwargs round-trip; bad ones are refused with the field named', () => {
    const trigger = new HITLTrigger({ eventKey: 'hitl:d/r/t', notBefore: '2026-12-03T10:00:00+01:00' });
    const [classpath, kwargs] = trigger.serialize();
    expect(classpath).to.equal('tsflow.triggers.HITLTrigger');
    expect(kwargs).to.deep.equal({ eventKey: 'hitl:d/r/t', notBefore: '2026-12-03T09:00:00.000Z' });
    expect(new HITLTrigger(kwargs as { eventKey: string; notBefore: string }).kwargs).to.deep.equal(kwargs);
    expect(() => new HITLTrigger({ eventKey: 'order-1', notBefore: '2026-12-03T10:00:00Z' })).to.throw(/eventKey must be 'hitl:…'/);
    expect(() => new HITLTrigger({ eventKey: 'hitl:x', notBefore: 'yesterday' })).to.throw(/notBefore must be an ISO 8601 timestamp/);
    expect(() => new HITLTrigger({ eventKey: 'hitl:x', notBefore: '2026-12-03T10:00:00Z', since: 5 } as never)).to.throw(/has no field 'since'/);
  });
});
