//! Fuzzes the Dockerfile parser, and what consumes its output: the stage graph and the
//! expansion of each instruction. Nothing may panic; located errors must be in range.
#![no_main]

use std::collections::BTreeMap;

use barge_build::{parse, Scope, StageGraph};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 8192 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count().max(1);
    match parse(&text) {
        Ok(df) => {
            for inst in df.instructions() {
                assert!(inst.start_line >= 1 && inst.start_line <= inst.end_line);
                assert!(inst.end_line <= lines);
            }
            let env: BTreeMap<String, String> =
                [("A".to_string(), "x y".to_string())].into_iter().collect();
            let lexer = df.lexer();
            for inst in df.instructions() {
                let _ = inst.command.expand(&lexer, &env);
            }
            // Each stage through the ARG/ENV scoping the builder uses.
            if let Ok(meta) = df.meta_arg_values(&env) {
                for stage in &df.stages {
                    let mut scope = Scope::new(meta.clone(), env.clone(), &["PATH=/bin".to_string()]);
                    for inst in &stage.instructions {
                        let _ = scope.apply(&lexer, &inst.command);
                    }
                    let _ = scope.run_env();
                }
            }
            if let Ok(g) = StageGraph::new(&df, &BTreeMap::new()) {
                let plan = g.plan(None).expect("the last stage is always a target");
                // Dependencies come before the stages that need them.
                let order: Vec<usize> = plan.order().collect();
                for (pos, &s) in order.iter().enumerate() {
                    for d in &g.stages[s].deps {
                        let dpos = order.iter().position(|x| x == d).expect("dep planned");
                        assert!(dpos < pos);
                    }
                }
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "{e:?}");
            let _ = e.to_string();
        }
    }
});
